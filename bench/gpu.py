"""Cross-device exactness and GPU speed of the Triton backend , for a machine with CUDA.

    python -m bench.gpu [--model FILE] [--limit BYTES] [--out bench/results-gpu]

(a) every bench file (up to --limit bytes per modality) is compressed on the GPU and
    decompressed on the CPU engine, and compressed on the CPU and decompressed on the GPU;
    the sha256 of each round trip must equal the original's, and both .tz streams must be
    byte-identical;
(b) compress and decompress speed on the GPU and on the CPU (all cores), same data, same run;
(c) achieved int8 operations per second on the GPU against --peak-tops (H100 SXM dense int8:
    1979 TOPS), counting the model's multiply-adds per byte.
Writes results.json and results.md to --out. On a machine without CUDA, --gpu-device cpu runs
the Triton kernels on the CPU under TRITON_INTERPRET=1 (slow; for a smoke test only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tzip  # noqa: E402
from bench.run import bench_files  # noqa: E402
from corpora.build import default_cache  # noqa: E402
from tzip.engine.registry import get_model


def macs_per_byte(cfg) -> int:
    """Multiply-adds the model spends on one byte (linear layers, attention over W + M keys, head)."""
    d, kv, ff = cfg.d_model, cfg.kv_dim, cfg.d_ff
    linear = cfg.n_layers * (d * (d + 2 * kv) + d * d + 2 * d * ff) + d * 256
    attention = cfg.n_layers * 2 * d * (cfg.window + (cfg.mem_slots if cfg.use_memory else 0))
    return linear + attention


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--sets", default="text,image,audio")
    ap.add_argument("--limit", type=int, default=0, help="bytes per modality (0: the whole set)")
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--out", type=Path, default=Path("bench/results-gpu"))
    ap.add_argument("--gpu-device", default="cuda")
    ap.add_argument("--peak-tops", type=float, default=1979.0)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = get_model(args.model)
    gpu = dict(model=model, device=args.gpu_device)
    cpu = dict(model=model, device="cpu", workers=0)
    rows, failures = {}, []
    for m in [s for s in args.sets.split(",") if s]:
        totals = dict(raw=0, packed=0, gpu_c=0.0, gpu_d=0.0, cpu_c=0.0, cpu_d=0.0)
        for f in bench_files(args.cache, m, args.limit):
            data = f.read_bytes()
            want = hashlib.sha256(data).hexdigest()
            on_gpu, t_gc = timed(tzip.compress, data, **gpu)
            on_cpu, t_cc = timed(tzip.compress, data, **cpu)
            back_cpu, t_cd = timed(tzip.decompress, on_gpu, **cpu)
            back_gpu, t_gd = timed(tzip.decompress, on_cpu, **gpu)
            ok = (on_gpu == on_cpu and hashlib.sha256(back_cpu).hexdigest() == want
                  and hashlib.sha256(back_gpu).hexdigest() == want)
            if not ok:
                failures.append(f"{m}/{f.name}")
            for k, v in dict(raw=len(data), packed=len(on_gpu), gpu_c=t_gc, gpu_d=t_gd, cpu_c=t_cc, cpu_d=t_cd).items():
                totals[k] += v
            print(f"{m:6} {f.name:60} {'ok' if ok else 'MISMATCH'}", flush=True)
        rows[m] = totals
    per_byte = macs_per_byte(model.cfg)
    lines = [f"### Triton backend on {args.gpu_device} against the CPU engine, model {model.model_id}", "",
             "| modality | bytes | ratio | GPU compress kB/s | GPU decompress kB/s | CPU compress kB/s "
             "| CPU decompress kB/s | GPU int8 TOPS (compress) | of peak |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for m, r in rows.items():
        raw = r["raw"]
        tops = 2 * per_byte * raw / r["gpu_c"] / 1e12 if r["gpu_c"] else 0.0
        lines.append(f"| {m} | {raw:,} | {r['packed'] / raw:.4f} | {raw / r['gpu_c'] / 1e3:,.1f} | "
                     f"{raw / r['gpu_d'] / 1e3:,.1f} | {raw / r['cpu_c'] / 1e3:,.1f} | {raw / r['cpu_d'] / 1e3:,.1f} | "
                     f"{tops:.3f} | {100 * tops / args.peak_tops:.3f} % |")
    lines += ["", f"Cross-device round trips: {'all identical' if not failures else 'FAILED: ' + ', '.join(failures)}",
              f"({per_byte:,} multiply-adds per byte)", ""]
    md = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(md)
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "failures": failures,
                                                       "macs_per_byte": per_byte}, indent=1))
    print(md)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
