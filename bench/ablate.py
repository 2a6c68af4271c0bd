"""Ablation table: real coded bits per byte of several models on the bench subsets.

    python -m bench.ablate NAME=MODEL.tzm [NAME=MODEL.tzm ...] [--limit BYTES] [--methods M,..] [--out FILE.md]

Each model codes the same files (chosen as bench.run --limit chooses them) with neural coding
only by default (`--methods neural,match` allows the match model too; never the zstd or stored
fallback, which would hide a weaker model behind zstd), at the default
segment sizes; sizes are those of the complete .tz streams, container included. Models meant to
be compared should have the same training budget: the table says what each one saw.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tzip  # noqa: E402
from bench.run import bench_files  # noqa: E402
from corpora.build import default_cache  # noqa: E402
from tzip.engine.registry import get_model


def coded_bits(model_path: str, files: dict[str, list[Path]], workers: int,
               methods: tuple[str, ...] = ("neural",)) -> dict[str, float]:
    out = {}
    for modality, paths in files.items():
        raw = coded = 0
        for p in paths:
            data = p.read_bytes()
            raw += len(data)
            coded += len(tzip.compress(data, model=model_path, methods=methods, workers=workers))
        out[modality] = 8 * coded / raw
    return out


def trained_on(model_path: str) -> str:
    """Bytes and steps of training, as the export recorded them in the model file."""
    meta = get_model(model_path).file.meta
    return f"{meta['tokens'] / 1e6:.1f} M bytes, {meta['steps']} steps" if "tokens" in meta else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="NAME=PATH of an integer model file")
    ap.add_argument("--limit", type=int, default=300_000, help="bytes per modality")
    ap.add_argument("--sets", default="text,image,audio")
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--methods", default="neural",
                    help="segment codings allowed, e.g. neural,match (the network with the match model)")
    args = ap.parse_args(argv)
    modalities = [m for m in args.sets.split(",") if m]
    files = {m: bench_files(args.cache, m, args.limit) for m in modalities}
    sizes = ", ".join(f"{m} {sum(p.stat().st_size for p in files[m]):,} B in {len(files[m])} files"
                      for m in modalities)
    methods = tuple(args.methods.split(","))
    lines = [f"Coded bits per byte ({'+'.join(methods)}) on the bench subsets ({sizes}); lower is better.", "",
             "| model | config | trained on | " + " | ".join(modalities) + " |",
             "| --- | --- | --- | " + " | ".join("---:" for _ in modalities) + " |"]
    for spec in args.models:
        name, _, path = spec.partition("=")
        cfg = get_model(path).cfg
        shape = (f"d={cfg.d_model} L={cfg.n_layers} kv={cfg.n_kv_heads} W={cfg.window} "
                 f"memory={'on' if cfg.use_memory else 'off'} features={'on' if cfg.use_features else 'off'}"
                 + (f" audio predictor={cfg.audio_predictor}" if cfg.audio_predictor else ""))
        bits = coded_bits(path, files, args.workers, methods)
        lines.append(f"| {name} | {shape} | {trained_on(path)} | "
                     + " | ".join(f"{bits[m]:.3f}" for m in modalities) + " |")
        print(lines[-1], flush=True)
    md = "\n".join(lines) + "\n"
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
