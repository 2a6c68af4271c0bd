"""The Triton backend against the PyTorch engine, bit for bit (docs/DESIGN.md §2 b), on the interpreter.

TRITON_INTERPRET=1 (set in conftest before triton is imported) runs every kernel on the CPU with
numpy, so these tests need no GPU; on a machine with CUDA the same kernels are compiled.
"""

from __future__ import annotations

import pytest
import torch

from tzip.engine.config import ModelConfig
from tzip.engine.modelfile import parse
from tzip.engine.reference import IntModel, rmsnorm
from tzip.train.export import export

from .conftest import build_tiny
from .test_engine import incremental, parallel, payload

triton_engine = pytest.importorskip("tzip.engine.triton_backend")

# head dim 16: tl.dot on int8 needs every block dimension >= 16
BASE = dict(d_model=64, n_layers=2, n_heads=4, d_ff=64, window=16, block=4, mem_slots=4)
SHAPES = {"multi-query": dict(n_kv_heads=1), "full": dict(n_kv_heads=4),
          "window only": dict(n_kv_heads=2, use_memory=False)}


@pytest.fixture(scope="module")
def pairs() -> dict[str, tuple[IntModel, triton_engine.TritonModel]]:
    out = {}
    for name, extra in SHAPES.items():
        mf = parse(export(build_tiny(cfg=ModelConfig(**{**BASE, **extra}))).to_bytes())
        out[name] = (IntModel(mf), triton_engine.TritonModel(mf, "cpu"))
    return out


def test_linear_kernel_matches_requantised_int_mm(pairs):
    ref, tri = pairs["multi-query"]
    x = torch.randint(-127, 128, (37, 64), dtype=torch.int8)
    for lin in (ref.layers[0].qkv, ref.layers[1].up, ref.head):
        got = tri.linear(lin, x)
        assert torch.equal(got, lin(x))
        assert torch.equal(tri.linear(lin, x, -127, 127), lin(x).clamp(-127, 127))


def test_rmsnorm_kernel_matches_engine(pairs):
    _, tri = pairs["full"]
    h = torch.randint(-(2**20), 2**20, (50, 64), dtype=torch.int32) >> torch.randint(0, 20, (50, 1), dtype=torch.int32)
    h[0] = 0
    h[1] = 2**20
    assert torch.equal(tri.norm(h), rmsnorm(h))


def test_frequencies_kernel_matches_engine(pairs):
    ref, tri = pairs["full"]
    h = torch.randint(-(2**12), 2**12, (40, 64), dtype=torch.int32)
    assert torch.equal(tri.freqs(h), ref.frequencies(h.clone()))


@pytest.mark.parametrize("shape", list(SHAPES))
def test_triton_parallel_pass_matches_engine(pairs, samples, shape):
    ref, tri = pairs[shape]
    for key in ("text", "ppm", "wav_stereo") if shape == "multi-query" else ("text",):
        body, layout = payload(samples, key)
        segs = [body[:150], body[200:261]]  # past W + c*M = 32; two rows of different lengths
        for a, b in zip(parallel(tri, segs, layout), parallel(ref, segs, layout)):
            assert torch.equal(a, b)


def test_api_routes_through_the_triton_backend(pairs, samples):
    """A stream coded by the Triton backend decodes on the CPU engine, and the reverse."""
    import tzip

    ref, tri = pairs["multi-query"]
    data = samples["text"][:300]
    on_tri = tzip.compress(data, model=tri, segment_size=256, methods=("neural",))
    assert on_tri == tzip.compress(data, model=ref, segment_size=256, methods=("neural",))
    assert tzip.decompress(on_tri, model=ref) == data


def test_triton_decoder_matches_engine(pairs, samples):
    ref, tri = pairs["multi-query"]
    body, layout = payload(samples, "text")
    segs = [body[:45], body[100:140]]  # past W + c*M = 32
    for got, want in zip(incremental(tri, segs, layout), incremental(ref, segs, layout)):
        assert torch.equal(got, want)
