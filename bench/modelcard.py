"""Measure a model for its model card: real coded sizes by the exact engine, and the QAT gap.

    python -m bench.modelcard --model tzip/models/tzip-small.tzm [--ckpt runs/small/ckpt.pt] [--limit BYTES]

For each bench modality (files chosen as in bench.run with --limit): the size of the complete
.tz file `tzip.compress` writes at the default segment size (bits per byte of the original),
and, on identical 8 KiB segments, the float model's cross-entropy next to the neural coder's
real output (the gap the integer engine costs). One file per modality is also decompressed
and compared (the smallest: decoding is the slow direction).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import tzip  # noqa: E402
from bench.run import bench_files  # noqa: E402
from corpora.build import default_cache  # noqa: E402
from tzip.codec.encoder import encode_segments
from tzip.engine.config import ModelConfig
from tzip.engine.features import feature_indices, phase_indices
from tzip.engine.registry import get_model
from tzip.format.detect import split_bytes
from tzip.stages.hints import hints_for
from tzip.train.model import TzipModel

GAP_SEGMENT = 8192


def float_bits(model: TzipModel, segment: bytes, layout) -> float:
    x = torch.frombuffer(bytearray(segment), dtype=torch.uint8)[None]
    hints = None  # a model with hint slots sees the segment's (cold at its start, as the coder's)
    if model.cfg.hint_slots:
        hints = torch.from_numpy(hints_for(segment, layout).astype("int64"))[None]
    with torch.no_grad():
        logits = model(feature_indices(x, layout), phase_indices(torch.arange(len(segment)), layout)[None], hints)
    return F.cross_entropy(logits[0].float(), x[0].long(), reduction="sum").item() / math.log(2)


def segments_of(payload: bytes, unit: int, size: int) -> list[bytes]:
    size = max(unit, size // unit * unit)
    return [payload[i : i + size] for i in range(0, len(payload), size)]


def measure(model_path: str, ckpt: str | None, cache: Path, limit: int, modalities: list[str],
            verify: bool = True, workers: int = 0) -> dict:
    engine = get_model(model_path)
    fmodel = None
    if ckpt:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        fmodel = TzipModel(ModelConfig(**state["model_config"]))
        fmodel.load_state_dict(state["model"])
        fmodel.eval()
    out = {"model_id": engine.model_id, "modalities": {}}
    for m in modalities:
        files = bench_files(cache, m, limit)
        raw = coded = 0
        gap_float = gap_engine = 0.0
        t0 = time.time()
        smallest = min(files, key=lambda p: p.stat().st_size)
        for f in files:
            data = f.read_bytes()
            packed = tzip.compress(data, model=engine, workers=workers)
            raw, coded = raw + len(data), coded + len(packed)
            if verify and f == smallest:  # decoding is the slow direction: verify on the smallest file
                assert tzip.decompress(packed, model=engine, workers=workers) == data, f"round trip failed on {f}"
            if fmodel is not None:
                _, payload, _, split = split_bytes(data)
                segs = segments_of(payload, split.unit(), GAP_SEGMENT)
                gap_float += sum(float_bits(fmodel, s, split.layout) for s in segs)
                gap_engine += 8 * sum(len(c) for _, c in encode_segments(engine, segs, split.layout, ("neural",)))
        row = {"files": len(files), "raw_bytes": raw, "tz_bytes": coded, "bits_per_byte": 8 * coded / raw,
               "ratio": coded / raw, "seconds": round(time.time() - t0, 1)}
        if fmodel is not None:
            row.update({"float_bits_per_byte_8k": gap_float / raw, "engine_bits_per_byte_8k": gap_engine / raw,
                        "qat_gap": gap_engine / gap_float - 1})
        out["modalities"][m] = row
        print(json.dumps({m: row}), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tzip/models/tzip-small.tzm")
    ap.add_argument("--ckpt", default=None, help="float checkpoint, for the QAT gap")
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--limit", type=int, default=1 << 20, help="bytes per modality (0: all)")
    ap.add_argument("--sets", default="text,image,audio")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-verify", action="store_true", help="skip the decompression check")
    ap.add_argument("--workers", type=int, default=0, help="tzip worker processes (0: one per core)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    res = measure(args.model, args.ckpt, args.cache, args.limit, args.sets.split(","), not args.no_verify,
                  args.workers)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
