"""Pack train sets into one compact training shard (<= ~50 MiB) that a GPU run can carry.

    python -m corpora.pack OUT.shard [--text-mb 24 --prose-mb 0 --image-mb 14 --audio-mb 10 --binary-mb 0]
                                     [--cache DIR] [--hints]
    python -m corpora.pack --add-hints X.shard [--predictor N]

Files are split into modelling-order payloads (tzip.modality.detect), cut into chunks of at
most 256 KiB on row/frame boundaries, and chosen deterministically (by hash of name) up to each
modality's budget (--prose-mb: text from the prose-train set, beside text-train's); 2 % of the
chosen chunks are marked for validation. Binary files are packed as the compressor models them:
a tar with its headers gathered, zlib streams inflated (format/transcode.py), an x86 executable
through the x86 filter (codec/x86.py).

--hints stores, beside the payload, the stages' hints for every byte (a version 2 shard, for models
with hint slots, docs/DESIGN.md §8), each doc's computed with the stage cold at its start, as at a
coded segment's; --predictor N computes 16-bit audio's on the residual of audio predictor N, as a
model with that audio_predictor sees it. --add-hints adds them to an existing shard in place.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from tzip.codec import x86
from tzip.format.detect import pcm16_channels, predict_residual, split_bytes
from tzip.format.layout import Layout
from tzip.format.transcode import byte_exact_form
from tzip.stages.hints import hints_for
from tzip.train.shard import Shard, write_shard

from .build import default_cache

CHUNK = 1 << 18


def modelling_form(data: bytes) -> bytes:
    """A binary file's bytes as the compressor's models see them: its byte-exact form where it has
    one, then through the x86 filter where that starts as an x86 executable (as the compressor
    decides from the form's head)."""
    form = byte_exact_form(data, "binary")
    data = data if form is None else form[0]
    return x86.apply(data, 0) if x86.is_x86(data[:64]) else data


def chunks(name: str, data: bytes, mode: str):
    if mode == "binary":
        data = modelling_form(data)
    _, payload, _, split = split_bytes(data, mode)
    lay, unit = split.layout, split.unit()
    size = max(unit, CHUNK // unit * unit)
    for i in range(0, len(payload), size):
        piece = payload[i : i + size]
        if len(piece) >= 4096:
            yield f"{name}#{i // size}", lay, piece


def rank(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def select(set_dir: Path, mode: str, budget: int):
    manifest = json.loads((set_dir / "manifest.json").read_text())
    pieces = []
    for rel in sorted(manifest["files"]):
        pieces.extend(chunks(f"{set_dir.name}/{rel}", (set_dir / rel).read_bytes(), mode))
    pieces.sort(key=lambda p: rank(p[0]))
    chosen, total = [], 0
    for name, lay, data in pieces:
        if total + len(data) > budget:
            continue
        chosen.append([name, lay, data, int(rank("val" + name), 16) % 50 == 0])
        total += len(data)
    if len(chosen) > 1 and not any(c[3] for c in chosen):  # hold out at least one chunk
        min(chosen, key=lambda c: rank("val" + c[0]))[3] = True
    if len(chosen) > 1 and all(c[3] for c in chosen):  # ...but never all of them
        chosen[0][3] = False
    return [tuple(c) for c in chosen]


def doc_hints(data: bytes, lay: Layout, predictor: int = 0) -> np.ndarray:
    """A doc's hints [len(data), N_HINTS], computed on what the model sees (16-bit audio as the
    predictor's residual of the whole doc, as train.model_order gives it)."""
    channels = pcm16_channels(lay) if predictor else 0
    if channels:
        data = predict_residual(data, channels, predictor)
    return hints_for(np.frombuffer(data, dtype=np.uint8), lay)


def add_hints(path: Path, predictor: int = 0) -> dict:
    """Rewrite a shard (version 1 or 2) with the hints of every doc; the payload stays as it is."""
    shard = Shard(path)
    docs = [(d.name, d.layout, shard.bytes_of(d).tobytes(), d.val) for d in shard.docs]
    del shard  # its memory map; the rewrite replaces the file
    return write_shard(path, docs, [doc_hints(data, lay, predictor) for _, lay, data, _ in docs], predictor)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, nargs="?")
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--text-mb", type=float, default=24)
    ap.add_argument("--prose-mb", type=float, default=0, help="text from prose-train (narrative prose)")
    ap.add_argument("--image-mb", type=float, default=14)
    ap.add_argument("--audio-mb", type=float, default=10)
    ap.add_argument("--binary-mb", type=float, default=0)
    ap.add_argument("--hints", action="store_true", help="store the stages' hints of every byte (version 2 shard)")
    ap.add_argument("--add-hints", type=Path, metavar="SHARD", help="add hints to an existing shard, in place")
    ap.add_argument("--predictor", type=int, default=0, choices=(0, 1, 2),
                    help="audio predictor the 16-bit audio hints are computed for (the model's audio_predictor)")
    args = ap.parse_args(argv)
    if args.add_hints:
        info = add_hints(args.add_hints, args.predictor)
        print(json.dumps({**info, "sha256": hashlib.sha256(args.add_hints.read_bytes()).hexdigest()}))
        return
    if args.out is None:
        ap.error("give OUT (or --add-hints SHARD)")
    docs = []
    for name, mode, mb in (("text", "text", args.text_mb), ("prose", "text", args.prose_mb),
                           ("image", "image", args.image_mb), ("audio", "audio", args.audio_mb),
                           ("binary", "binary", args.binary_mb)):
        set_dir = args.cache / "sets" / f"{name}-train"
        if mb <= 0:
            continue
        if not (set_dir / "manifest.json").exists():
            raise SystemExit(f"{set_dir} is not built: python -m corpora.build {name}-train")
        docs.extend(select(set_dir, mode, int(mb * 1e6)))
    hints = [doc_hints(data, lay, args.predictor) for _, lay, data, _ in docs] if args.hints else None
    info = write_shard(args.out, docs, hints, args.predictor)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(json.dumps({**info, "sha256": digest}))


if __name__ == "__main__":
    main()
