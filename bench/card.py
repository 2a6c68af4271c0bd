"""Write a model card (markdown) from the model file, its training log and measured figures.

    python -m bench.card --model tzip/models/tzip-small.tzm --measured modelcard.json \\
        --log runs/small/log.jsonl --shard train.shard > tzip/models/tzip-small.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tzip.engine.modelfile import load


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--measured", type=Path, required=True)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--shard", type=Path, default=None)
    ap.add_argument("--manifests", type=Path, nargs="*", default=[])
    ap.add_argument("--notes", default="")
    args = ap.parse_args(argv)
    mf = load(args.model)
    measured = json.loads(args.measured.read_text())
    log = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    last = [r for r in log if "tokens" in r][-1]  # the last training step (a measurement may follow)
    vals = [r for r in log if "val_bpb" in r]
    params = sum(v.size for k, v in mf.tensors.items() if k.endswith(".w") or k.startswith("embed."))
    cfg = mf.config
    out = [f"# {args.model.stem}", "",
           f"- model id: `{mf.model_id}`; file `{args.model.name}`, {args.model.stat().st_size:,} bytes "
           f"({args.model.stat().st_size / 2**20:.2f} MiB)",
           f"- parameters: {params:,} (int8 matrices, int32 embeddings)",
           "- config: " + ", ".join(f"{k}={v}" for k, v in cfg.items()),
           f"- reach: window {cfg['window']} + memory {cfg['block']}×{cfg['mem_slots']} = "
           f"{cfg['window'] + cfg['block'] * cfg['mem_slots']} bytes", "",
           "## Training", "",
           f"- tokens seen: {last['tokens']:,} in {last['step']} steps, wall {last['wall_s'] / 60:.0f} min on "
           f"{last['device']} ({'2 shared cores' if last['device'] == 'cpu' else 'GPU'})"]
    if args.shard:
        out.append(f"- shard: `{args.shard.name}`, sha256 `{hashlib.sha256(args.shard.read_bytes()).hexdigest()}`")
    for m in args.manifests:
        man = json.loads(m.read_text())
        out.append(f"- set `{man['set']}`: manifest `{man['manifest_sha256']}` {json.dumps(man['summary'])}")
    if vals:
        out.append(f"- last held-out float bits/byte (0 text, 1 image, 2 audio, 3 binary): {vals[-1]['val_bpb']}")
    out += ["", "## Measured on the bench sets (held out)", "",
            "Real coded sizes: complete `.tz` files written by `tzip.compress` at the default segment size "
            "(container included), over the subset `bench.modelcard --limit` selects. The QAT gap compares, "
            "on identical 8 KiB segments, the neural coder's real output with the float model's cross-entropy.", "",
            "| modality | files | raw bytes | .tz bytes | bits/byte | float CE (8 KiB) | engine coded (8 KiB) | gap |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for m, r in measured["modalities"].items():
        gap = (f"{r['float_bits_per_byte_8k']:.3f} | {r['engine_bits_per_byte_8k']:.3f} | {100 * r['qat_gap']:+.2f} %"
               if "qat_gap" in r else "– | – | –")
        sizes = f"{r['raw_bytes']:,} | {r['tz_bytes']:,} | {r['bits_per_byte']:.3f}"
        out.append(f"| {m} | {r['files']} | {sizes} | {gap} |")
    if args.notes:
        out += ["", args.notes]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
