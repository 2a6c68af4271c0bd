"""The C engine (tzip/native/engine.c: step and parallel pass) gives the PyTorch engine's frequencies, bit for bit."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tzip.engine import library, native
from tzip.engine.config import ModelConfig
from tzip.engine.modelfile import parse
from tzip.engine.reference import Decoder, IntModel
from tzip.train.export import export

from .conftest import build_tiny
from .test_engine import parallel, payload

pytestmark = pytest.mark.skipif(os.environ.get("TZIP_NATIVE") == "0", reason="C step disabled by TZIP_NATIVE=0")


def run_steps(dec, segments: list[bytes]) -> list[torch.Tensor]:
    n = max(len(s) for s in segments)
    data = np.zeros((len(segments), n), dtype=np.uint8)
    for i, s in enumerate(segments):
        data[i, : len(s)] = np.frombuffer(s, dtype=np.uint8)
    steps = []
    for t in range(n):
        steps.append(dec.step().clone())
        dec.push(data[:, t])
    freqs = torch.stack(steps, 1)
    return [freqs[i, : len(s)] for i, s in enumerate(segments)]


def c_parallel(model: IntModel, segments: list[bytes], layout) -> list[torch.Tensor]:
    return [torch.from_numpy(native.parallel(model, np.frombuffer(s, dtype=np.uint8), layout)) for s in segments]


def both(model: IntModel, segments: list[bytes], layout) -> tuple[list, list]:
    n = max(len(s) for s in segments)
    c_step = run_steps(native.NativeDecoder(model, [layout] * len(segments), n), segments)
    torch_step = run_steps(Decoder(model, [layout] * len(segments), n), segments)
    return c_step, torch_step


def test_the_c_step_builds_here():
    """CI machines have a C compiler: the fast path must really be in use there."""
    assert native.available(), native.unavailable_reason()


@pytest.mark.parametrize("key", ["text", "pgm", "ppm", "wav_mono", "wav_stereo", "random"])
def test_c_step_equals_pytorch_step_and_parallel(tiny, samples, key):
    body, layout = payload(samples, key)
    segs = [body[:300], body[300:420], body[-90:]]
    c_step, torch_step = both(tiny, segs, layout)
    for a, b, p in zip(c_step, torch_step, parallel(tiny, segs, layout)):
        assert torch.equal(a, b) and torch.equal(a, p)


SHAPES = {
    "multi-query": dict(n_heads=4, n_kv_heads=1),
    "grouped": dict(n_heads=4, n_kv_heads=2),
    "no memory": dict(n_heads=2, use_memory=False),
    "odd window": dict(n_heads=2, window=13, block=4, mem_slots=3),
    "wide ff": dict(n_heads=2, d_ff=96, n_layers=3),
}


def shaped_model(shape: str) -> IntModel:
    base = dict(d_model=32, n_layers=2, n_heads=2, d_ff=64, window=16, block=4, mem_slots=4)
    return IntModel(parse(export(build_tiny(seed=3, cfg=ModelConfig(**{**base, **SHAPES[shape]}))).to_bytes()))


@pytest.mark.parametrize("shape", list(SHAPES))
def test_c_engine_across_attention_shapes(samples, shape):
    """Both C entry points against both PyTorch ones, for every attention shape."""
    model = shaped_model(shape)
    for key in ("text", "ppm", "wav_stereo"):
        body, layout = payload(samples, key)
        segs = [body[:257], body[300:400]]
        c_step, torch_step = both(model, segs, layout)
        for a, b, c, p in zip(c_step, torch_step, c_parallel(model, segs, layout), parallel(model, segs, layout)):
            assert torch.equal(a, b) and torch.equal(c, p)


@pytest.mark.parametrize("key", ["text", "pgm", "ppm", "wav_mono", "wav_stereo", "random"])
def test_c_parallel_pass_equals_pytorch_parallel_pass(tiny, samples, key):
    body, layout = payload(samples, key)
    segs = [body[:300], body[300:301], body[-130:]]  # 130 crosses a 64-row pass of engine.c
    for a, p in zip(c_parallel(tiny, segs, layout), parallel(tiny, segs, layout)):
        assert torch.equal(a, p)
    assert native.parallel(tiny, np.zeros(0, dtype=np.uint8), layout).shape == (0, 256)


@pytest.mark.parametrize("key", ["text", "ppm", "wav_stereo"])
def test_the_pass_split_across_two_threads_is_the_same(tiny, samples, key):
    """engine.c runs a long segment's second half on a second thread, started a receptive field
    early: every frequency equals the one-thread pass (shipped and tiny model, row features too)."""
    from tzip.engine.registry import get_model

    body, layout = payload(samples, key)
    x = np.frombuffer((body * (40000 // len(body) + 1))[:40000], dtype=np.uint8)
    for model in (get_model(None), tiny):
        for n in (16384, 23457, 40000):
            one, two = (native.parallel(model, x[:n], layout, threads=k) for k in (1, 2))
            assert np.array_equal(one, two), (n, key)


def test_batches_larger_than_one_pass(tiny, samples):
    """engine.c walks the batch in chunks of 32 segments: 40 segments cross a chunk boundary."""
    body, layout = payload(samples, "text")
    segs = [body[i * 7 : i * 7 + 60 + i] for i in range(40)]
    c_step, torch_step = both(tiny, segs, layout)
    for a, b in zip(c_step, torch_step):
        assert torch.equal(a, b)


def test_default_model_c_step(samples):
    """The shipped model (d=128, multi-query, W=64) on real text and audio, against the parallel pass."""
    from tzip.engine.registry import get_model, reference

    model = reference(get_model(None))
    for key in ("text", "wav_mono"):
        body, layout = payload(samples, key)
        segs = [body[:700], body[700:1000]]
        n = max(len(s) for s in segs)
        c_step = run_steps(native.NativeDecoder(model, [layout] * 2, n), segs)
        for a, c, p in zip(c_step, c_parallel(model, segs, layout), parallel(model, segs, layout)):
            assert torch.equal(a, p) and torch.equal(c, p)


def test_the_fused_decode_turns_equal_the_step_by_step_loop(samples):
    """native.DecodeTurns (step, stages and float32 in one call; bytes and updates in another) gives
    the decode loop what the step, NativeStages and numpy give one call at a time: the shipped
    model, three segments of unequal length coded with the bit mixer, the counts and the network."""
    from tzip.codec.pipeline import batch_stages
    from tzip.engine.registry import get_model
    from tzip.stages.protocol import NativeStages

    model = get_model(None)
    body, layout = payload(samples, "text")
    segs = [np.frombuffer(body[i * 500 : (i + 1) * 500 - 150 * i], dtype=np.uint8) for i in range(3)]
    lengths, ways, n = np.array([len(s) for s in segs]), ["bits", "context", "neural"], max(map(len, segs))

    def batch():
        history = np.zeros((3, n), dtype=np.uint8)
        stages = NativeStages.of(batch_stages(ways, history, layout), history)
        return history, stages, native.NativeDecoder(model, [layout] * 3, n)

    (h1, s1, d1), (h2, s2, d2) = batch(), batch()
    symbols = np.zeros(3, dtype=np.int64)
    turns = native.DecodeTurns(d1, s1.args, h1, symbols)
    for t in range(n):
        s1.set_active(lengths > t)
        s2.set_active(lengths > t)
        assert np.array_equal(turns.predict(t), s2.adjust(d2.step_numpy(), t).astype(np.float32))
        symbols[:] = [s[t] if t < len(s) else 0 for s in segs]
        assert turns.learn(t) == 0
        h2[:, t] = symbols
        s2.update(t)
        d2.push(symbols)
    assert np.array_equal(h1, h2) and d1.t == d2.t == n


def test_model_decoder_prefers_the_c_step(tiny):
    from tzip.format.layout import Layout

    assert isinstance(tiny.decoder([Layout.text()], 4), native.NativeDecoder)


def _fallback_script(env: dict) -> str:
    code = ("import tzip, tzip.engine.native as n; from tzip.engine.registry import get_model; "
            "from tzip.format.layout import Layout; m = get_model(None); d = m.decoder([Layout.text()], 4); "
            "data = b'fallback keeps the same bytes ' * 40; "
            "assert tzip.decompress(tzip.compress(data)) == data; "
            "print(n.available(), type(d).__name__, n.unavailable_reason())")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_without_the_c_library_the_pytorch_step_takes_over(tmp_path):
    assert _fallback_script({"TZIP_NATIVE": "0"}).startswith("False Decoder")
    out = _fallback_script({"TZIP_NATIVE_BUILD": "1", "CC": str(tmp_path / "no-such-cc"),
                            "TZIP_CACHE_DIR": str(tmp_path / "cache")})
    assert out.startswith("False Decoder") and "cannot build" in out


def cpu_runs(level: str) -> bool:
    lib = native.library()
    return lib is not None and library.LEVELS.index(level) <= lib.tzip_cpu_level()


@pytest.mark.parametrize("level", [*library.LEVELS, "built here"])
def test_every_build_gives_the_same_frequencies(tmp_path, level):
    """Each CPU level the package builds (portable, AVX2, AVX-512 VNNI: other instructions and
    vector widths), and a developer build made here without CPU tuning, compute the PyTorch
    engine's integers, in the parallel pass and step by step."""
    if level in library.LEVELS and not cpu_runs(level):
        pytest.skip(f"this CPU does not run the {level} build")
    code = ("import numpy as np, torch, tzip.engine.native as n; from tzip.engine import library; "
            "from tzip.engine.registry import get_model; "
            "from tzip.format.layout import Layout; from tzip.engine.reference import Decoder, IntModel; "
            "m = IntModel(get_model(None).file); lay = Layout.audio(2, 2); data = np.arange(300) * 7 % 251; "
            "p = n.parallel(m, data.astype(np.uint8), lay)\n"
            "a, b = n.NativeDecoder(m, [lay] * 2, 300), Decoder(m, [lay] * 2, 300)\n"
            "for t in range(300):\n"
            "    f = b.step(); assert torch.equal(a.step(), f) and np.array_equal(p[t], f[0].numpy()), t\n"
            "    a.push(np.array([data[t], 255 - data[t]])); b.push(np.array([data[t], 255 - data[t]]))\n"
            "print(library.level())")
    env = {**os.environ, "TZIP_CACHE_DIR": str(tmp_path)}
    env.update({"TZIP_NATIVE_BUILD": "1", "TZIP_NATIVE_MARCH": ""} if level == "built here" else
               {"TZIP_CPU_LEVEL": level})
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == level
    assert bool(list(tmp_path.glob("tzip_native_*.so"))) == (level == "built here")


def test_a_level_the_cpu_cannot_run_is_refused(tmp_path):
    code = "from tzip.engine import library; print(library.available(), library.unavailable_reason())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TZIP_CPU_LEVEL": "sse9"},
                         capture_output=True, text=True)
    assert out.stdout.startswith("False TZIP_CPU_LEVEL must be one of portable, avx2, avx512")


def test_shapes_outside_the_c_engine_run_on_pytorch(samples):
    """A width that is not a power of two: the C engine declines and the PyTorch engine codes it."""
    import tzip
    from tzip.format.layout import Layout

    cfg = ModelConfig(d_model=48, n_layers=1, n_heads=2, d_ff=64, window=16, block=4, mem_slots=4)
    model = IntModel(parse(export(build_tiny(seed=5, cfg=cfg)).to_bytes()))
    assert not native.supports(model) and not native.usable(model)
    assert isinstance(model.decoder([Layout.text()], 8), Decoder)
    data = samples["text"][:700]
    assert tzip.decompress(tzip.compress(data, model=model), model=model) == data
