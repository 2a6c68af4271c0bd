"""Where the engine's time goes: compress (parallel pass) and decompress (batched decode steps).

    python -m bench.profile [--model FILE] [--bytes N] [--batch B] [--steps S] [--out FILE.md]

Runs the engine in this process on one thread (as each worker does), under torch.profiler, and
groups the self time of every PyTorch op into classes: matrix products, integer/elementwise
arithmetic, dtype conversions and copies, table lookups and gathers, reductions, allocation, and
the rest; "Python and dispatch" is wall time not spent inside any op. Also prints kB/s, and
the decode step's time by batch size for the PyTorch step and the C step (tzip/native/engine.c), which
is what decompression runs where it builds (its inside is one call, so it is timed, not split).
The text is a bench file (alice29.txt); the decode steps are timed after warm-up, past W + c*M.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpora.build import default_cache  # noqa: E402
from tzip.engine.reference import Decoder
from tzip.engine.registry import get_model, reference
from tzip.format.layout import Layout

CLASSES = {
    "matrix products": ("mm", "bmm", "_int_mm", "matmul", "addmm", "baddbmm"),
    "integer/elementwise arithmetic": ("mul", "mul_", "add", "add_", "sub", "sub_", "rsub", "div", "div_",
                                       "floor_divide", "remainder", "__rshift__", "__lshift__",
                                       "bitwise_right_shift", "bitwise_right_shift_", "bitwise_left_shift",
                                       "bitwise_and", "clamp", "clamp_", "clamp_min", "clamp_max", "minimum",
                                       "maximum", "where", "gt", "ge", "lt", "le", "eq", "ne", "neg", "abs",
                                       "sqrt", "sqrt_", "square", "floor", "floor_", "pow", "__and__",
                                       "logical_and", "bitwise_and_"),
    "dtype conversions and copies": ("copy_", "_to_copy", "to", "clone", "contiguous", "cat", "stack",
                                     "as_strided", "expand", "reshape", "_reshape_alias"),
    "table lookups and gathers": ("index_select", "index", "gather", "take", "scatter_add_", "scatter_add",
                                  "index_put_", "embedding"),
    "reductions": ("sum", "amax", "argmax", "max", "min", "mean"),
    "allocation": ("empty", "empty_strided", "zeros", "zeros_like", "ones_like", "full", "fill_", "zero_",
                   "arange", "resize_"),
}


def op_class(name: str) -> str:
    base = name.removeprefix("aten::")
    for cls, names in CLASSES.items():
        if base in names:
            return cls
    return "other ops"


def classify(prof, wall: float) -> dict[str, float]:
    out = {c: 0.0 for c in CLASSES} | {"other ops": 0.0}
    for ev in prof.key_averages():
        if ev.key.startswith("aten::"):
            out[op_class(ev.key)] += ev.self_cpu_time_total / 1e6
    out["Python and dispatch"] = max(0.0, wall - sum(out.values()))
    return out


def profile_compress(model, data: bytes) -> tuple[float, dict[str, float]]:
    x = torch.frombuffer(bytearray(data), dtype=torch.uint8)[None]
    model.parallel(x[:, :4096], [Layout.text()])  # warm-up
    t0 = time.perf_counter()
    model.parallel(x, [Layout.text()])
    plain = time.perf_counter() - t0
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        model.parallel(x, [Layout.text()])
        wall = time.perf_counter() - t0
    return len(data) / plain, classify(prof, wall)


def warm_steps(model) -> int:
    """Steps after which a decoder is in steady state: past the window and a full memory."""
    return model.cfg.window + model.cfg.block * (model.cfg.mem_slots + 8)


def timed_steps(dec, batch: int, steps: int) -> float:
    """Seconds for `steps` decode steps (one byte value for every segment)."""
    symbols = torch.full((batch,), 101, dtype=torch.long)
    t0 = time.perf_counter()
    for _ in range(steps):
        dec.step()
        dec.push(symbols)
    return time.perf_counter() - t0


def profile_decompress(model, batch: int, steps: int) -> tuple[float, dict[str, float]]:
    warm = warm_steps(model)
    dec = Decoder(model, [Layout.text()] * batch, warm + 2 * steps + 8)
    timed_steps(dec, batch, warm)
    plain = timed_steps(dec, batch, steps)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wall = timed_steps(dec, batch, steps)
    return batch * steps / plain, classify(prof, wall)


def step_rates(model, batches: list[int], steps: int) -> str:
    """The C step against the PyTorch step, same model and batches: microseconds per step and kB/s."""
    from tzip.engine import native

    warm = warm_steps(model)
    kinds = {"PyTorch step": Decoder}
    if native.usable(model):
        kinds["C step (engine.c)"] = native.NativeDecoder
    lines = ["#### decode step by batch size (one thread, bytes decoded per second of engine time)", "",
             "| step | batch | us per step | us per segment | kB/s |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, make in kinds.items():
        for batch in batches:
            dec = make(model, [Layout.text()] * batch, warm + steps + 8)
            timed_steps(dec, batch, warm)
            per = timed_steps(dec, batch, steps) / steps
            lines.append(f"| {name} | {batch} | {per * 1e6:.0f} | {per * 1e6 / batch:.1f} | {batch / per / 1e3:.1f} |")
    if len(kinds) == 1:
        lines.append(f"\n(C step unavailable: {native.unavailable_reason() or 'unsupported model'})")
    return "\n".join(lines + [""])


def c_pass_rate(model, data: bytes) -> str:
    """The C parallel pass (what compression runs where it builds) on the same bytes."""
    import numpy as np

    from tzip.engine import native

    if not native.usable(model):
        return f"(C parallel pass unavailable: {native.unavailable_reason() or 'unsupported model'})\n"
    x = np.frombuffer(data, dtype=np.uint8)
    native.parallel(model, x[:4096], Layout.text())  # warm-up
    lines = []
    for threads in (1, 2):  # a segment's second half on a second thread (what a lone segment gets)
        t0 = time.perf_counter()
        native.parallel(model, x, Layout.text(), threads=threads)
        rate = len(data) / (time.perf_counter() - t0)
        lines.append(f"#### compress: C parallel pass (engine.c) over the same {len(data):,} bytes, "
                     f"{threads} thread{'s' if threads > 1 else ''}: {rate / 1e3:.1f} kB/s\n")
    return "".join(lines)


def table(title: str, rate: float, parts: dict[str, float]) -> str:
    total = sum(parts.values())
    lines = [f"#### {title}: {rate / 1e3:.1f} kB/s (one thread, unprofiled)", "",
             "| op class | seconds | share |", "| --- | ---: | ---: |"]
    for k, v in sorted(parts.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {k} | {v:.3f} | {100 * v / total:.1f} % |")
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--bytes", type=int, default=65536)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = reference(get_model(args.model))  # the PyTorch engine's timings beside the C engine's
    data = (args.cache / "sets" / "text-bench" / "alice29.txt").read_bytes()[: args.bytes]
    c_rate, c_parts = profile_compress(model, data)
    d_rate, d_parts = profile_decompress(model, args.batch, args.steps)
    cfg = model.cfg
    md = "\n".join([
        f"### Engine profile, model {model.model_id} (d={cfg.d_model}, layers={cfg.n_layers}, heads={cfg.n_heads}, "
        f"kv heads={getattr(cfg, 'n_kv_heads', cfg.n_heads)}, W={cfg.window}, c={cfg.block}, M={cfg.mem_slots})", "",
        table(f"compress: PyTorch parallel pass over {len(data):,} bytes of text", c_rate, c_parts),
        c_pass_rate(model, data),
        table(f"decompress: {args.steps} decode steps, batch of {args.batch} segments (PyTorch step)", d_rate, d_parts),
        step_rates(model, [1, 8, 64], args.steps),
    ])
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)


if __name__ == "__main__":
    main()
