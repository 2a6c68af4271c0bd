"""Hints (tzip/stages/hints.py, tzip/native/hints.c): the stages' own predictions as the network's
inputs. The C hints equal the stages' Python references, and a model with hint slots gives the
same integers in every engine: C and PyTorch, parallel pass and step, whole and in pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tzip.engine import native
from tzip.engine.config import ModelConfig
from tzip.engine.features import feature_indices, phase_indices
from tzip.engine.modelfile import parse
from tzip.engine.reference import Decoder, IntModel
from tzip.format.detect import split_bytes
from tzip.format.layout import ABSENT, N_HINTS, Layout
from tzip.stages.hints import HintsBatch, hints_for
from tzip.train.export import export
from tzip.train.model import TzipModel

from .conftest import DATA, TINY


def payloads(samples: dict[str, bytes]) -> dict[str, tuple[bytes, Layout]]:
    out = {}
    for key, mode in (("ppm", "image"), ("pgm", "image"), ("wav_mono", "audio"), ("wav_stereo", "audio"),
                      ("text", "text"), ("random", "binary")):
        _, payload, _, split = split_bytes(samples[key], mode)
        out[key] = payload[:6000], split.layout
    return out


@pytest.fixture(scope="module")
def hint_model() -> IntModel:
    """The tiny model with hint slots whose tables are random (a trained model's are not zero)."""
    torch.manual_seed(1)
    model = TzipModel(ModelConfig(**{**TINY.to_dict(), "hint_slots": N_HINTS}))
    g = torch.Generator().manual_seed(5)
    text = (DATA / "alice_head.txt").read_bytes()[:512]
    x = torch.frombuffer(bytearray(text), dtype=torch.uint8)[None]
    hints = torch.from_numpy(hints_for(text, Layout.text()).astype(np.int64))[None]
    with torch.no_grad():
        for table in model.hints:
            table.weight.copy_(torch.randn(table.weight.shape, generator=g) * 0.3)
        model.train()  # one calibration pass sets the activation scales
        model(feature_indices(x, Layout.text()), phase_indices(torch.arange(x.shape[1]), Layout.text())[None], hints)
    return IntModel(parse(export(model.eval()).to_bytes()))


def test_c_hints_equal_the_python_references(samples):
    for key, (data, layout) in payloads(samples).items():
        fast = hints_for(data, layout)
        assert fast.shape == (len(data), N_HINTS) and fast.dtype == np.int16, key
        assert np.array_equal(fast[:3000], hints_for(data[:3000], layout, native=False)), key


def test_hints_are_in_range_and_predict(samples):
    for key, (data, layout) in payloads(samples).items():
        h = hints_for(data, layout).astype(np.int64)
        assert ((h >= 0) & (h <= ABSENT)).all(), key
        present = h[:, 0] < ABSENT
        assert (h[present, 1] < 16).all() and (h[~present, 1] == ABSENT).all(), key
        if key in ("ppm", "pgm", "text"):  # a stage that models the data predicts it better than chance
            hit = (h[present, 0] == np.frombuffer(data, np.uint8)[present]).mean()
            assert hit > 0.05, (key, hit)


def test_the_batch_steps_give_the_whole_segment_hints(samples):
    for key, (data, layout) in payloads(samples).items():
        sym = np.frombuffer(data[:2000], np.uint8)
        history = np.zeros((2, len(sym) + 1), dtype=np.uint8)
        batch = HintsBatch(history, layout)
        got = []
        for t in range(len(sym)):
            got.append(batch.predict(t)[0].copy())
            history[:, t] = sym[t]
            batch.update(t)
        assert np.array_equal(np.array(got), hints_for(sym, layout)), key


def test_a_hint_model_is_exact_in_every_engine(hint_model, samples):
    for key, (data, layout) in payloads(samples).items():
        seg = np.frombuffer(data[:1500], np.uint8)
        c_pass = native.parallel(hint_model, seg, layout)
        x = torch.from_numpy(seg.copy())[None]
        assert np.array_equal(c_pass, hint_model.parallel(x, [layout])[0].numpy()), key
        assert np.array_equal(native.parallel(hint_model, seg, layout, rows=(700, 400)), c_pass[700:1100]), key
        assert np.array_equal(native.parallel(hint_model, seg, layout, threads=2), c_pass), key
        for dec in (native.NativeDecoder(hint_model, [layout], len(seg)), Decoder(hint_model, [layout], len(seg))):
            for t in range(len(seg)):
                step = dec.step()
                assert np.array_equal(np.asarray(step[0]), c_pass[t]), (key, type(dec).__name__, t)
                dec.push(seg[t : t + 1].copy())


def test_the_hints_change_the_prediction(hint_model, samples):
    data, layout = payloads(samples)["ppm"]
    seg = np.frombuffer(data[:1000], np.uint8)
    with_hints = native.parallel(hint_model, seg, layout)
    absent = np.full((len(seg), N_HINTS), ABSENT, dtype=np.int16)
    assert not np.array_equal(with_hints, native.parallel(hint_model, seg, layout, hints=absent))


@pytest.mark.parametrize("key", ["ppm", "wav_stereo", "text", "random"])
def test_a_hint_model_round_trips_every_way(hint_model, samples, key, tmp_path):
    """Compression's pass and decompression's steps see the same hints: every coding method, one
    and several segments, chained text, in-process and with worker processes."""
    import tzip

    path = tmp_path / "hint.tzm"
    path.write_bytes(export_bytes(hint_model))
    data = samples[key][:20000]
    for kw in ({}, {"segment_size": 4096}, {"segment_size": 4096, "workers": 2}):
        packed = tzip.compress(data, model=path, **kw)
        assert tzip.decompress(packed, model=path) == data, (key, kw)


def export_bytes(model: IntModel) -> bytes:
    return model.file.to_bytes()


def test_a_hint_model_on_the_triton_kernels(hint_model, samples):
    triton_engine = pytest.importorskip("tzip.engine.triton_backend")
    tri = triton_engine.TritonModel(hint_model.file, "cpu")
    for key in ("wav_mono",):  # the interpreter is slow: a few windows and memory blocks
        data, layout = payloads(samples)[key]
        seg = np.frombuffer(data[:72], np.uint8)
        c_pass = native.parallel(hint_model, seg, layout)
        assert np.array_equal(tri.parallel(torch.from_numpy(seg.copy())[None], [layout])[0].numpy(), c_pass), key
        dec = tri.decoder([layout], len(seg))
        for t in range(len(seg)):
            assert np.array_equal(dec.step()[0].numpy(), c_pass[t]), (key, t)
            dec.push(seg[t : t + 1].copy())
