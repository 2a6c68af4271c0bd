"""Pack train sets into one compact training shard (<= ~50 MiB) that a GPU run can carry.

    python -m corpora.pack OUT.shard [--text-mb 24 --image-mb 14 --audio-mb 10] [--cache DIR]

Files are split into modelling-order payloads (tzip.modality.detect), cut into chunks of at
most 256 KiB on row/frame boundaries, and chosen deterministically (by hash of name) up to each
modality's budget; 2 % of the chosen chunks are marked for validation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from tzip.format.detect import split_bytes
from tzip.train.shard import write_shard

from .build import default_cache

CHUNK = 1 << 18


def chunks(name: str, data: bytes, mode: str):
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--text-mb", type=float, default=24)
    ap.add_argument("--image-mb", type=float, default=14)
    ap.add_argument("--audio-mb", type=float, default=10)
    args = ap.parse_args(argv)
    docs = []
    for mode, mb in (("text", args.text_mb), ("image", args.image_mb), ("audio", args.audio_mb)):
        set_dir = args.cache / "sets" / f"{mode}-train"
        if mb <= 0:
            continue
        if not (set_dir / "manifest.json").exists():
            raise SystemExit(f"{set_dir} is not built: python -m corpora.build {mode}-train")
        docs.extend(select(set_dir, mode, int(mb * 1e6)))
    info = write_shard(args.out, docs)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(json.dumps({**info, "sha256": digest}))


if __name__ == "__main__":
    main()
