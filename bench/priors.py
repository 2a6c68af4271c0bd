"""Tune the context-count model: ideal code length of text under several (orders, priors) settings.

    python -m bench.priors FILE[:OFFSET:LENGTH] ... [--settings 2,3,4/256,64,16 3,4/256,32 ...]

The default model's frequencies are computed once per 64 KiB segment, the match model applied,
then each setting of tzip/counts.py (its Python reference, with ORDERS and PRIOR replaced) is
scored by the ideal code length in bits per byte. These are tuning figures: what a setting
would cost the range coder, without the container. docs/ABLATIONS.md lists the ones measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tzip import counts, match  # noqa: E402
from tzip.coder import code_length  # noqa: E402
from tzip.context import Layout  # noqa: E402
from tzip.models import get_model  # noqa: E402

SEGMENT = 64 * 1024


def slice_of(spec: str) -> bytes:
    """FILE, or FILE:OFFSET:LENGTH (OFFSET "mid" = the middle of the file)."""
    path, *rest = spec.split(":")
    data = Path(path).read_bytes()
    if not rest:
        return data
    start = len(data) // 2 if rest[0] == "mid" else int(rest[0])
    return data[start : start + int(rest[1])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--settings", nargs="+", default=["2,3,4/64,12,4", "2,3,4/256,64,16"])
    args = ap.parse_args(argv)
    model = get_model()
    segments = []
    for spec in args.files:
        data = np.frombuffer(slice_of(spec), dtype=np.uint8)
        for i in range(0, len(data), SEGMENT):
            x = data[i : i + SEGMENT].copy()
            segments.append((x, match.apply(x, model.segment_frequencies(x, Layout.text()))))
    n = sum(len(x) for x, _ in segments)
    print(f"{len(args.files)} files, {n:,} bytes, {len(segments)} segments; bits per byte (ideal):")
    print(f"  network + match model: {sum(code_length(x, f) for x, f in segments) / n:.4f}")
    for setting in args.settings:
        orders, priors = (tuple(int(v) for v in part.split(",")) for part in setting.split("/"))
        saved = counts.ORDERS, counts.PRIOR
        counts.ORDERS, counts.PRIOR = orders, priors
        try:
            bits = sum(code_length(x, counts.apply(x, f, native=False)) for x, f in segments)
        finally:
            counts.ORDERS, counts.PRIOR = saved
        print(f"  + counts orders {setting.split('/')[0]} priors {setting.split('/')[1]}: {bits / n:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
