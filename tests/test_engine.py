"""Exactness of the integer engine (docs/DESIGN.md §2): parallel == incremental, invariances, bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tzip.engine.config import ModelConfig
from tzip.engine.constants import FP32_EXACT, FREQ_BITS
from tzip.engine.features import feature_indices, phase_indices, visible_slots
from tzip.engine.modelfile import ModelFileError, parse
from tzip.engine.reference import IntModel, rmsnorm
from tzip.format.detect import split_bytes
from tzip.format.layout import Layout
from tzip.train.export import export

from .conftest import TINY, build_tiny


def incremental(model: IntModel, segments: list[bytes], layout: Layout) -> list[torch.Tensor]:
    n = max(len(s) for s in segments)
    dec = model.decoder([layout] * len(segments), n)  # this backend's incremental pass
    data = torch.zeros(len(segments), n, dtype=torch.uint8)
    for i, s in enumerate(segments):
        data[i, : len(s)] = torch.frombuffer(bytearray(s), dtype=torch.uint8)
    steps = []
    for t in range(n):
        steps.append(dec.step())
        dec.push(data[:, t])
    freqs = torch.stack(steps, 1)
    return [freqs[i, : len(s)] for i, s in enumerate(segments)]


def parallel(model: IntModel, segments: list[bytes], layout: Layout, **kw) -> list[torch.Tensor]:
    n = max(len(s) for s in segments)
    data = torch.zeros(len(segments), n, dtype=torch.uint8)
    for i, s in enumerate(segments):
        data[i, : len(s)] = torch.frombuffer(bytearray(s), dtype=torch.uint8)
    freqs = model.parallel(data, [layout] * len(segments), **kw)
    return [freqs[i, : len(s)] for i, s in enumerate(segments)]


def payload(samples, key) -> tuple[bytes, Layout]:
    _, body, _, split = split_bytes(samples[key])
    return body, split.layout


@pytest.mark.parametrize("key", ["text", "pgm", "ppm", "wav_mono", "wav_stereo", "random"])
def test_parallel_equals_incremental(tiny, samples, key):
    body, layout = payload(samples, key)
    seg = body[:300]  # > W + c*M = 32: crosses the window and memory boundaries many times
    (par,) = parallel(tiny, [seg], layout)
    (inc,) = incremental(tiny, [seg], layout)
    assert torch.equal(par, inc)


@pytest.fixture(scope="module")
def tiny_variants() -> dict[str, IntModel]:
    """Other attention shapes the engine supports: multi-query, grouped, window only."""
    shapes = {
        "multi-query": dict(n_heads=4, n_kv_heads=1),
        "grouped": dict(n_heads=4, n_kv_heads=2),
        "no memory": dict(n_heads=2, use_memory=False),
        "odd window": dict(n_heads=2, window=13, block=4, mem_slots=3),
    }
    base = dict(d_model=32, n_layers=2, n_heads=2, d_ff=64, window=16, block=4, mem_slots=4)
    return {k: IntModel(parse(export(build_tiny(cfg=ModelConfig(**{**base, **v}))).to_bytes()))
            for k, v in shapes.items()}


@pytest.mark.parametrize("variant", ["multi-query", "grouped", "no memory", "odd window"])
def test_parallel_equals_incremental_variants(tiny_variants, samples, variant):
    model = tiny_variants[variant]
    for key in ("text", "ppm", "wav_stereo"):
        body, layout = payload(samples, key)
        segs = [body[:257], body[300:400]]
        inc = incremental(model, segs, layout)
        for chunk in (4, 12, 64):
            for a, b in zip(parallel(model, segs, layout, chunk=chunk), inc):
                assert torch.equal(a, b)


def test_frequencies_are_valid(tiny, samples):
    body, layout = payload(samples, "text")
    (freqs,) = parallel(tiny, [body[:500]], layout)
    assert freqs.dtype == torch.int32
    assert int(freqs.min()) >= 1
    assert torch.all(freqs.sum(-1) == 1 << FREQ_BITS)


def test_chunking_does_not_change_results(tiny, samples):
    body, layout = payload(samples, "text")
    ref = parallel(tiny, [body[:400]], layout)[0]
    for chunk in (1, 7, 16, 333, 1024):
        assert torch.equal(parallel(tiny, [body[:400]], layout, chunk=chunk)[0], ref)


def test_batch_composition_and_order(tiny, samples):
    body, layout = payload(samples, "text")
    segs = [body[:50], body[100:400], body[500:501], body[600:790]]
    alone = [parallel(tiny, [s], layout)[0] for s in segs]
    batched = parallel(tiny, segs, layout)
    reversed_ = parallel(tiny, segs[::-1], layout)[::-1]
    inc = incremental(tiny, segs, layout)
    for a, b, r, i in zip(alone, batched, reversed_, inc):
        assert torch.equal(a, b) and torch.equal(a, r) and torch.equal(a, i)


def test_thread_count_does_not_change_results(tiny, samples):
    body, layout = payload(samples, "ppm")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = parallel(tiny, [body[:600]], layout)[0]
        torch.set_num_threads(2)
        two = parallel(tiny, [body[:600]], layout)[0]
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


@pytest.mark.parametrize("d", [32, 96, 128])
def test_rmsnorm_matches_integer_reference(d):
    """The float64 RMSNorm equals its definition in Python integers, up to the extremes."""
    rng = np.random.default_rng(d)
    rows = [rng.integers(-(2**k), 2**k, d) for k in (1, 4, 8, 12, 16, 20) for _ in range(30)]
    rows += [np.full(d, 2**20), np.full(d, -(2**20)), np.eye(1, d, 3)[0].astype(np.int64) * 2**20,
             np.zeros(d, np.int64), np.eye(1, d, 0)[0].astype(np.int64)]
    h = torch.tensor(np.stack(rows), dtype=torch.int32)
    got = rmsnorm(h).tolist()
    for row, out in zip(h.tolist(), got):
        ms = 256 * sum(v * v for v in row) // d
        r = max(1, math.isqrt(ms))
        inv = (2**32 + r // 2) // r
        assert out == [max(-127, min(127, (v * inv + 2**23) >> 24)) for v in row]


def test_visibility_rules():
    # slot b (positions [4b, 4b+4)) becomes visible once it has left the window [t-15, t]
    w, c, m = 16, 4, 4
    for t in range(200):
        lo, hi = visible_slots(t, w, c, m)
        visible = {b for b in range(100) if (b + 1) * c <= t - w + 1}
        want = sorted(visible)[-m:]
        assert list(range(lo, hi)) == want
        tl, th = visible_slots(torch.tensor([t]), w, c, m)
        assert (int(tl), int(th)) == (lo, hi)


def test_float_model_and_engine_agree(tiny_float, tiny, samples):
    """The exact engine's coded cost tracks the float model's cross-entropy (QAT mirror)."""
    body, layout = payload(samples, "text")
    x = torch.frombuffer(bytearray(body[:1000]), dtype=torch.uint8)[None]
    with torch.no_grad():
        logits = tiny_float(feature_indices(x, layout), phase_indices(torch.arange(1000), layout)[None])
    ce = F.cross_entropy(logits[0], x[0].long()).item() / math.log(2)
    freqs = tiny.parallel(x, [layout])[0]
    bits = -(freqs.gather(1, x[0].long()[:, None]).double() / 2**FREQ_BITS).log2().mean().item()
    assert abs(bits - ce) / ce < 0.02


def test_extremes_stay_within_integer_bounds(tiny_path, samples, monkeypatch):
    """Saturated weights and embeddings: every float32 GEMM's sum of |terms| stays below 2^24,
    and every int32 requantisation product stays below 2^31 (checked in int64)."""
    import tzip.engine.reference as engine

    mf = parse(tiny_path.read_bytes())
    t = {k: v.copy() for k, v in mf.tensors.items()}
    for k, v in t.items():
        if k.endswith(".w"):
            t[k] = np.where(np.arange(v.size).reshape(v.shape) % 2 == 0, 127, -127).astype(np.int8)
        if k.startswith("embed."):  # random signs at a fifth of the residual clamp each
            signs = np.random.default_rng(1).choice([-1, 1], size=v.shape)
            t[k] = (signs * (2**20 // 5)).astype(v.dtype)
    mf.tensors = t
    model = IntModel(mf)
    worst, products = [], []
    real_matmul, real_requant = torch.matmul, engine.Requant.__call__

    def checked_matmul(a, b):
        bound = real_matmul(a.abs().double(), b.abs().double())
        worst.append(float(bound.max()))
        assert torch.all(bound < FP32_EXACT)
        return real_matmul(a, b)

    def checked_requant(self, acc):
        wide = acc.long().abs() * self.mult.long() + self.round.long()
        products.append(int(wide.max()))
        assert int(wide.max()) < 2**31
        return real_requant(self, acc)

    monkeypatch.setattr(torch, "matmul", checked_matmul)
    monkeypatch.setattr(engine.Requant, "__call__", checked_requant)
    body, layout = payload(samples, "text")
    (freqs,) = parallel(model, [body[:200]], layout)
    assert worst and max(worst) > 2**18  # the extremes really were extreme
    assert products and max(products) > 2**28
    assert int(freqs.min()) >= 1 and torch.all(freqs.sum(-1) == 1 << FREQ_BITS)
    (inc,) = incremental(model, [body[:200]], layout)
    assert torch.equal(inc, freqs)
    h = torch.full((3, TINY.d_model), 2**20, dtype=torch.int32)
    h[1] = -(2**20)
    h[2, ::2] = 0
    x = rmsnorm(h)
    assert int(x.abs().max()) <= 127


def test_bound_check_rejects_oversized_models(tiny_path):
    mf = parse(tiny_path.read_bytes())
    mf.tensors = dict(mf.tensors)
    mf.tensors["layers.0.down.mult"] = mf.tensors["layers.0.down.mult"] * 64  # could overflow int32
    with pytest.raises(ValueError, match="int32 requantisation bound"):
        IntModel(mf)
    model = build_tiny(cfg=ModelConfig(d_model=2112, n_layers=1, n_heads=2, d_ff=64, window=16, block=4, mem_slots=4))
    with pytest.raises(ValueError, match="exact float32 bound"):  # head dim 1056: q.k could pass 2^24
        IntModel(parse(export(model).to_bytes()))


def test_model_file_id_and_corruption(tiny_path):
    data = tiny_path.read_bytes()
    mf = parse(data)
    assert len(mf.model_id) == 16
    name = "layers.0.qkv.w"
    mf.tensors = {**mf.tensors, name: mf.tensors[name].copy()}
    mf.tensors[name].flat[0] ^= 1
    assert parse(mf.to_bytes()).model_id != parse(data).model_id
    with pytest.raises(ModelFileError):
        parse(b"NOTAMODEL" + data[9:])
    with pytest.raises(ModelFileError):
        parse(data[: len(data) // 2])


def test_head_slicing_does_not_change_results(tiny, samples, monkeypatch):
    import tzip.engine.reference as engine

    body, layout = payload(samples, "wav_stereo")
    ref = parallel(tiny, [body[:300], body[300:500]], layout)
    monkeypatch.setattr(engine, "HEAD_ROWS", 7)
    for a, b in zip(ref, parallel(tiny, [body[:300], body[300:500]], layout)):
        assert torch.equal(a, b)
