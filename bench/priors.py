"""Tune the context-count model (tzip/stages/counts.py): score configurations, fit the shipped beta table.

    python -m bench.priors FILE[:OFFSET:LENGTH] ... [--settings context context1 2,3,4/256,64,16 ...]
    python -m bench.priors FILE ... --fit [--orders 1,2,3,4,5,6] [--check BENCHFILE ...]

The default model's frequencies are computed once per segment (the text segment size), the
match model applied, then:

- each setting (`context`, `context1`: the container's; `ORDERS/PRIORS`: one beta per order) is
  run through the counts (the C library's, the integers of the reference) and scored by the ideal code
  length in bits per byte;
- --fit records, for every position and order, the count of the byte that came, the context's
  total and how many different bytes it saw, and fits log beta per (order, total cell, distinct
  cell) by gradient descent on the code length of the chained blend (a light smoothness penalty
  keeps rarely seen cells near their neighbours), then prints the integer table for counts.py.
  --check scores the fitted table on other files (the bench) without fitting on them.

These are tuning figures: what a setting would cost the range coder, without the container.
docs/ABLATIONS.md lists the ones measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tzip.api import SEGMENT_BY_MODALITY  # noqa: E402
from tzip.codec.encoder import code_length
from tzip.engine.registry import get_model
from tzip.format.detect import pcm16_channels, split_bytes, swap16, to_model_order
from tzip.format.layout import IMAGE, Layout
from tzip.stages import counts, match


def payload_of(spec: str) -> tuple[bytes, Layout]:
    """A file's payload in modelling order and its layout, as the compressor sees them; FILE:OFFSET:LENGTH
    takes a slice of the payload (OFFSET "mid" = its middle), whole rows or frames."""
    path, *rest = spec.split(":")
    _, payload, _, split = split_bytes(Path(path).read_bytes())
    unit = split.unit()
    if rest:
        start = len(payload) // 2 if rest[0] == "mid" else int(rest[0])
        start, length = start // unit * unit, int(rest[1]) // unit * unit
        payload = payload[start : start + length]
    if split.swapped:  # split_bytes swapped the samples already; the model may want a predictor's residual
        channels = pcm16_channels(split.layout)
        payload = to_model_order(swap16(payload), True, get_model().cfg.audio_predictor if channels else 0, channels)
    return payload, split.layout


def config_of(setting: str, modality: int) -> counts.Config:
    if setting in ("context", "context1"):
        return counts.config(setting, modality)
    orders, priors = (tuple(int(v) for v in part.split(",")) for part in setting.split("/"))
    return counts.Config.flat(orders, priors)


def matched_segments(specs: list[str]) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """(bytes, frequencies after the network and the match model) per segment of the files, at the
    compressor's segment size, and the files' modality (they must share one)."""
    model, out, modalities = get_model(), [], set()
    for spec in specs:
        payload, layout = payload_of(spec)
        modalities.add(layout.modality)
        unit = layout.offsets[1] if layout.modality == IMAGE and layout.offsets[1] else layout.period
        size = max(unit, SEGMENT_BY_MODALITY[layout.modality] // unit * unit)
        data = np.frombuffer(payload, dtype=np.uint8)
        for i in range(0, len(data), size):
            x = data[i : i + size].copy()
            out.append((x, match.apply(x, model.segment_frequencies(x, layout))))
    if len(modalities) > 1:
        raise SystemExit("bench.priors: files of one modality at a time (each has its own table)")
    return out, modalities.pop()


def statistics(segments, orders: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per position: the incoming probability of the byte that came, and per order the count of
    that byte in its context, the context's total and its distinct bytes (before the update)."""
    p0, c, n, d = [], [], [], []
    flat = counts.Config.flat(orders, (1,) * len(orders))  # only its tables are read: they hold the counts
    for x, f in segments:
        t_len = len(x)
        p0.append(f[np.arange(t_len), x] / counts.ONE)
        stats = np.zeros((3, t_len, len(orders)), dtype=np.int64)
        learnt = counts.SegmentCounts(flat)
        for t in range(t_len):
            sym = int(x[t])
            for j, (k, table) in enumerate(zip(orders, learnt.tables)):
                seen = table.get(counts.context(x, t, k)) if t >= k else None
                if seen:
                    stats[:, t, j] = seen.get(sym, 0), sum(seen.values()), sum(v > 0 for v in seen.values())
            learnt.update(x, t)
        c.append(stats[0])
        n.append(stats[1])
        d.append(stats[2])
    return {"p0": np.concatenate(p0), "c": np.concatenate(c), "n": np.concatenate(n), "d": np.concatenate(d)}


def blended_bits(stats: dict, log_beta, orders: tuple[int, ...]):
    """Bits per byte of the chained Dirichlet blend (real arithmetic) with log beta [order, cell, cell]."""
    import torch

    n_cells = torch.tensor(counts.TOTAL_EDGES)
    d_cells = torch.tensor(counts.DISTINCT_EDGES)
    p = torch.as_tensor(stats["p0"]).clamp_min(1 / counts.ONE)
    for j in range(len(orders)):
        c, n, d = (torch.as_tensor(stats[k][:, j]).double() for k in "cnd")
        nc = (torch.bucketize(n.contiguous(), n_cells.double(), right=True) - 1).clamp(0, len(n_cells) - 1)
        dc = (torch.bucketize(d.contiguous(), d_cells.double(), right=True) - 1).clamp(0, len(d_cells) - 1)
        beta = torch.exp(log_beta[j, nc, dc])
        p = torch.where(n > 0, (c + beta * p) / (n + beta), p)
    return -torch.log2(p).mean()


def fit(stats: dict, orders: tuple[int, ...], steps: int = 250, smooth: float = 1e-5) -> np.ndarray:
    import torch

    log_beta = torch.full((len(orders), len(counts.TOTAL_EDGES), len(counts.DISTINCT_EDGES)), 4.0,
                          dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([log_beta], lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        rough = ((log_beta[:, 1:] - log_beta[:, :-1]).pow(2).sum()
                 + (log_beta[:, :, 1:] - log_beta[:, :, :-1]).pow(2).sum())
        (blended_bits(stats, log_beta, orders) + smooth * rough).backward()
        opt.step()
    return torch.exp(log_beta.detach()).round().clamp(1, 65535).numpy().astype(np.int64)


def table_literal(beta: np.ndarray, orders: tuple[int, ...]) -> str:
    rows = []
    for k, table in zip(orders, beta):
        cells = "".join(f"        ({', '.join(map(str, r))}),\n" for r in table)
        rows.append(f"    (  # order {k}\n{cells}    ),\n")
    return "(\n" + "".join(rows) + ")"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--settings", nargs="+", default=["context", "context1"])
    ap.add_argument("--fit", action="store_true", help="fit the beta table on FILES and print it")
    ap.add_argument("--orders", default="1,2,3,4,5,6", help="orders of the fitted table")
    ap.add_argument("--check", nargs="*", default=[], help="files to score the fitted table on")
    args = ap.parse_args(argv)
    segments, modality = matched_segments(args.files)
    n = sum(len(x) for x, _ in segments)
    print(f"{len(args.files)} files, {n:,} bytes, {len(segments)} segments; bits per byte (ideal):")
    print(f"  network + match model: {sum(code_length(x, f) for x, f in segments) / n:.4f}")
    if args.fit:
        import torch

        orders = tuple(int(v) for v in args.orders.split(","))
        stats = statistics(segments, orders)
        beta = fit(stats, orders)
        config = counts.Config(orders, tuple(tuple(tuple(int(v) for v in r) for r in t) for t in beta))
        print(f"  fitted (real arithmetic): {blended_bits(stats, torch.log(torch.tensor(beta).double()), orders):.4f}")
        for name, specs in (("fitted on", args.files), ("checked on", args.check)):
            if specs:
                segs = segments if specs is args.files else matched_segments(specs)[0]
                bits = sum(code_length(x, counts.apply(x, f, config)) for x, f in segs)
                print(f"  coder's integers, {name} {len(specs)} files: {bits / sum(len(x) for x, _ in segs):.4f}")
        print(table_literal(beta, orders))
        return 0
    for setting in args.settings:
        config = config_of(setting, modality)
        bits = sum(code_length(x, counts.apply(x, f, config)) for x, f in segments)
        print(f"  + counts {setting}: {bits / n:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
