"""Per-file sizes: several models side by side on every file of the bench sets, with tzip's
classical-only path beside them.

    python -m bench.files NAME=MODEL.tzm [NAME=MODEL.tzm ...] [--sets binary] [--limit BYTES]
                          [--json FILE] [--out FILE.md]

Each file is coded whole by `tzip.compress` with its defaults (every coding method, fallbacks
included), as `bench.run` codes it; sizes are those of the complete .tz streams. The last column
is the classical-only path (bench/classical.py): the first model's copy with its output head
zeroed, so the network predicts uniform. Every model's classical-only path codes the same bytes
(the stages never see the network's weights, only its distribution, and that is uniform), so it
is coded once. A file where a model's stream is larger than the classical-only path is marked:
there the network costs bits instead of saving them. Compression only; `bench.run` checks the
round trips. `--previous FILE.json` takes the sizes of an earlier run's coders (same sets, same
files) instead of coding them again, so a new model is added to a table without recoding the
others.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tzip  # noqa: E402
from bench.classical import classical_model  # noqa: E402
from bench.run import bench_files  # noqa: E402
from corpora.build import default_cache  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="NAME=PATH of a model file")
    ap.add_argument("--sets", default="binary")
    ap.add_argument("--limit", type=int, default=0, help="bytes per set, chosen as bench.run chooses (0: all)")
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--workers", type=int, default=0, help="tzip worker processes (0: one per core)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--previous", type=Path, default=None, help="an earlier run's --json: its sizes are reused")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    models = dict(spec.partition("=")[::2] for spec in args.models)  # name -> model file, to code now
    earlier = {(r["set"], r["file"]): r for r in json.loads(args.previous.read_text())} if args.previous else {}
    reused = [n for n in dict.fromkeys(n for r in earlier.values() for n in r["sizes"]) if n not in models]
    if "classical-only" not in reused:
        models["classical-only"] = str(classical_model(next(iter(models.values())), args.cache))
    names = [n for n in [*models, *reused] if n != "classical-only"] + ["classical-only"]
    rows: list[dict] = []
    for modality in [m for m in args.sets.split(",") if m]:
        for path in bench_files(args.cache, modality, args.limit):
            data = path.read_bytes()
            row = {"set": modality, "file": path.name, "raw": len(data), "sizes": {}, "seconds": {}}
            for name in reused:
                row["sizes"][name] = earlier[(modality, path.name)]["sizes"][name]
                row["seconds"][name] = earlier[(modality, path.name)]["seconds"][name]
            for name, model in models.items():
                t0 = time.perf_counter()
                row["sizes"][name] = len(tzip.compress(data, model=model, workers=args.workers))
                row["seconds"][name] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    larger = {(n, r["file"]) for r in rows for n in names[:-1] if r["sizes"][n] > r["sizes"]["classical-only"]}
    lines = ["| set | file | raw bytes | " + " | ".join(names) + " |",
             "| --- | --- | ---: | " + " | ".join("---:" for _ in names) + " |"]
    for r in rows:
        cells = [f"{r['sizes'][n]:,}" + (" (larger)" if (n, r["file"]) in larger else "") for n in names]
        lines.append(f"| {r['set']} | {r['file']} | {r['raw']:,} | " + " | ".join(cells) + " |")
    totals = [f"{sum(r['sizes'][n] for r in rows):,}" for n in names]
    lines.append(f"| all | {len(rows)} files | {sum(r['raw'] for r in rows):,} | " + " | ".join(totals) + " |")
    md = "\n".join(lines) + "\n"
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if larger:
        print("larger than the classical-only path: " + ", ".join(f"{n} on {f}" for n, f in sorted(larger)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
