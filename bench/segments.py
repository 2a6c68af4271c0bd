"""Segment size against ratio and speed: whole .tz files of the bench subsets at several sizes.

    python -m bench.segments --sets image --sizes 16384,65536,262144 [--limit BYTES] [--workers N]

Each file is compressed and decompressed with `tzip` (the library, worker processes as the CLI
uses them), round trips checked; prints bits per byte and kB/s per size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import tzip  # noqa: E402
from bench.run import bench_files  # noqa: E402
from corpora.build import default_cache  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="text,image,audio")
    ap.add_argument("--sizes", default="16384,65536,262144")
    ap.add_argument("--limit", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=default_cache())
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| modality | segment | bits/byte | compress kB/s | decompress kB/s |\n| --- | ---: | ---: | ---: | ---: |")
    for modality in args.sets.split(","):
        datas = [f.read_bytes() for f in bench_files(args.cache, modality, args.limit)]
        raw = sum(map(len, datas))
        for size in map(int, args.sizes.split(",")):
            t0 = time.perf_counter()
            blobs = [tzip.compress(d, segment_size=size, workers=args.workers) for d in datas]
            t1 = time.perf_counter()
            if [tzip.decompress(b, workers=args.workers) for b in blobs] != datas:
                raise SystemExit(f"round trip failed: {modality} at {size}")
            t2 = time.perf_counter()
            bits = 8 * sum(map(len, blobs)) / raw
            print(f"| {modality} | {size // 1024} KiB | {bits:.4f} | {raw / (t1 - t0) / 1e3:.1f} | "
                  f"{raw / (t2 - t1) / 1e3:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
