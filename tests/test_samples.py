"""The sample model: C and Python give the same integers, decompression's steps give compression's
frequencies, and method 7 ("samples") segments round-trip and fail cleanly; method 13
("classical-samples") runs the same stages over a uniform distribution where the network loses."""

from __future__ import annotations

import numpy as np
import pytest

import tzip
from tzip.codec.encoder import PROBE_MARGIN, PROBE_ROWS, code_length
from tzip.engine import native
from tzip.format import container as C
from tzip.format.detect import split_bytes
from tzip.format.layout import Layout
from tzip.stages import samples as sample_model

from .mixed_stage import (
    batch_equals_scan,
    chosen_under_a_misled_network,
    coder_round_trip,
    damaged_fails,
    refused_elsewhere,
    twin_rows_under_a_leading_network,
    uniform_twin,
)
from .test_match import network_like

ONE = 1 << 16
needs_c = pytest.mark.skipif(not native.available(), reason="the C library is unavailable")


def recording(files: dict[str, bytes], key: str) -> tuple[np.ndarray, Layout]:
    _, payload, _, split = split_bytes(files[key])
    return np.frombuffer(payload, dtype=np.uint8), split.layout


def msb_first(values: np.ndarray) -> np.ndarray:
    return np.frombuffer(values.astype(">i2").tobytes(), dtype=np.uint8)


def recordings(files: dict[str, bytes]) -> list[tuple[np.ndarray, Layout]]:
    """Real mono speech and stereo music, and synthetic edge cases."""
    rng = np.random.default_rng(5)
    mono = Layout.audio(1, 2)
    square = np.where(np.arange(800) // 20 % 2, 32767, -32768)  # full scale: the filter's weights clamp
    return [
        recording(files, "wav_mono"),
        recording(files, "wav_stereo"),
        (msb_first(rng.integers(-32768, 32768, 700)), mono),  # noise
        (msb_first(square), mono),
        (np.zeros(901, dtype=np.uint8), mono),  # silence, and a trailing half sample left alone
        (msb_first(np.arange(-300, 300, 7))[:-3], Layout.audio(2, 2)),  # stereo, partial last frame
    ]


def scan_both(x, f, layout):
    return sample_model.apply(x, f, layout), sample_model.apply(x, f, layout, native=False)


@needs_c
def test_c_scan_equals_python(samples):
    for i, (x, layout) in enumerate(recordings(samples)):
        x = x[:3000]
        f = network_like(x, i)
        got, want = scan_both(x, f, layout)
        assert np.array_equal(got, want), i
        assert (got >= 1).all() and (got.sum(1) == ONE).all()


def test_the_filter_learns_a_recording(samples):
    """A pure tone costs a quarter of a flat prediction once the filter has locked on; speech far less
    than a flat prediction; a trailing partial frame is passed on untouched."""
    tone = msb_first(np.round(8000 * np.sin(np.arange(4000) * 0.05)).astype(np.int64))
    flat = np.full((len(tone), 256), ONE // 256, dtype=np.int32)
    got = sample_model.apply(tone, flat, Layout.audio(1, 2))
    assert code_length(tone[4000:], got[4000:]) < 0.3 * code_length(tone[4000:], flat[4000:])
    x, layout = recording(samples, "wav_mono")
    flat = np.full((len(x), 256), ONE // 256, dtype=np.int32)
    assert code_length(x, sample_model.apply(x, flat, layout)) < 0.75 * code_length(x, flat)
    odd = np.zeros(5, dtype=np.uint8)
    f = network_like(odd)
    assert np.array_equal(sample_model.apply(odd, f, Layout.audio(1, 2))[4], f[4])


def test_only_16_bit_pcm_layouts():
    x = np.zeros(10, dtype=np.uint8)
    assert sample_model.applies(Layout.audio(2, 2)) and not sample_model.applies(Layout.audio(1, 1))
    assert not sample_model.applies(Layout.image(1, 10)) and not sample_model.applies(Layout.text())
    with pytest.raises(ValueError):
        sample_model.apply(x, network_like(x), Layout.audio(1, 1))


@pytest.mark.parametrize("engine", ["c", "python"])
def test_batch_steps_equal_whole_segment_scan(engine, samples, monkeypatch):
    x, layout = recording(samples, "wav_stereo")
    segs = [x[:1200], x[1200:1600], x[1600:2803]]
    ways = ["samples", "context", "samples"]
    batch_equals_scan(engine, monkeypatch, sample_model, sample_model.SamplesBatch, segs, ways, layout)


def test_coder_round_trip_and_choice(tiny, samples):
    x, layout = recording(samples, "wav_mono")
    segs = [bytes(x[:4000]), bytes(x[4000:9001])]
    coder_round_trip(tiny, "samples", segs, layout)


def test_api_round_trips_with_the_sample_model(samples):
    for key in ("wav_mono", "wav_stereo"):
        data = samples[key]
        packed = tzip.compress(data)
        assert tzip.decompress(packed) == data
        model_less = tuple(m for m in tzip.api.METHODS if m not in ("samples", "classical-samples"))
        without = tzip.compress(data, methods=model_less)
        assert len(packed) < len(without), key


def test_a_samples_segment_outside_16_bit_audio_is_refused(tiny):
    refused_elsewhere(tiny, "samples", C.SAMPLES, Layout.image(1, 3))


def test_damaged_samples_segment_fails_cleanly(samples):
    packed = tzip.compress(samples["wav_mono"], methods=("samples",))
    damaged_fails(packed, C.SAMPLES)


def test_classical_samples_are_method_7s_stages_over_a_uniform_distribution(tiny, samples, monkeypatch):
    x, layout = recording(samples, "wav_mono")
    uniform_twin(tiny, "classical-samples", "samples", [bytes(x[:4000]), bytes(x[4000:9000])], layout,
                 Layout.text(), monkeypatch, sample_model)


def test_audio_codes_without_the_network_where_the_network_loses(misled, samples):
    chosen_under_a_misled_network(misled, samples["wav_mono"], "classical-samples", C.CLASSICAL_SAMPLES)


def test_a_classical_samples_segment_outside_16_bit_audio_is_refused(tiny):
    refused_elsewhere(tiny, "classical-samples", C.CLASSICAL_SAMPLES, Layout.image(1, 3))


def test_damaged_classical_samples_segment_fails_cleanly(samples):
    packed = tzip.compress(samples["wav_mono"], methods=("classical-samples",))
    damaged_fails(packed, C.CLASSICAL_SAMPLES)


def test_a_network_far_ahead_leaves_the_samples_twin_running_to_the_end(tiny, monkeypatch):
    """Method 13 has no PROBE_MARGIN: a lead at the probe can turn on audio, so the way without the
    network codes the whole segment beside the network's, however far the network leads."""
    rng = np.random.default_rng(5)
    t = np.arange(12_800)  # 25,600 bytes of 16-bit mono: longer than the probe
    wave = 8000 * np.sin(t / 9.0) + rng.normal(0, 200, len(t))
    x = np.frombuffer(wave.astype(">i2").tobytes(), dtype=np.uint8)
    assert "classical-samples" not in PROBE_MARGIN and len(x) > PROBE_ROWS
    assert twin_rows_under_a_leading_network(tiny, monkeypatch, "samples", "classical-samples", x,
                                             Layout.audio(1, 2)) == len(x)
