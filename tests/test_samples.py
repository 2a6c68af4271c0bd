"""The sample model: C and Python give the same integers, decompression's steps give compression's
frequencies, and method 7 ("samples") segments round-trip and fail cleanly."""

from __future__ import annotations

import numpy as np
import pytest

import tzip
from tzip import container as C
from tzip import counts, match, native
from tzip import samples as sample_model
from tzip.coder import CoderError, best_way, code_length, decode_segments, encode_segments
from tzip.context import Layout
from tzip.errors import TzipError
from tzip.modality import split_bytes

from .test_match import lock_step, network_like

ONE = 1 << 16
needs_c = pytest.mark.skipif(not native.available(), reason="no C compiler")


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
    """Decompression's lock-step batch (segments of unequal length, some coded without the sample
    model) computes what compression computed over each whole segment."""
    if engine == "python":
        for module in (match, counts, sample_model):
            monkeypatch.setattr(module, "_library", lambda: None)
    elif not native.available():
        pytest.skip("no C compiler")
    x, layout = recording(samples, "wav_stereo")
    segs = [x[:1200], x[1200:1600], x[1600:2803]]
    ways = ["samples", "context", "samples"]
    freqs = [network_like(s, i) for i, s in enumerate(segs)]
    hist = np.zeros((len(segs), max(map(len, segs))), dtype=np.uint8)
    stages = [match.MatchBatch([True] * 3, hist),
              counts.CountsBatch([True] * 3, hist, counts.config("context", layout.modality)),
              sample_model.SamplesBatch([w == "samples" for w in ways], hist, layout)]
    got = lock_step(segs, freqs, stages, hist)
    for s, f, g, w in zip(segs, freqs, got, ways):
        assert np.array_equal(g, best_way(s, f, (w,), layout)[1])


def test_coder_round_trip_and_choice(tiny, samples):
    x, layout = recording(samples, "wav_mono")
    segs = [bytes(x[:4000]), bytes(x[4000:9001]), b""]
    coded = encode_segments(tiny, segs, layout, ("samples",))
    assert [w for w, _ in coded[:2]] == ["samples", "samples"]
    assert decode_segments(tiny, [c for _, c in coded], [len(s) for s in segs], layout,
                           [w for w, _ in coded]) == segs
    every = encode_segments(tiny, segs[:1], layout, ("neural", "match", "context", "samples"))[0]
    assert every[0] == "samples" and every[1] == coded[0][1]
    text = encode_segments(tiny, [b"abcabcabd" * 30], Layout.text(), ("samples",))[0]
    assert text[0] == "context"  # not 16-bit audio: the sample model's pipeline without it


def test_api_round_trips_with_the_sample_model(samples):
    for key in ("wav_mono", "wav_stereo"):
        data = samples[key]
        packed = tzip.compress(data)
        assert tzip.decompress(packed) == data
        without = tzip.compress(data, methods=tuple(m for m in tzip.api.METHODS if m != "samples"))
        assert len(packed) < len(without), key


def test_a_samples_segment_outside_16_bit_audio_is_refused(tiny):
    with pytest.raises(CoderError):
        decode_segments(tiny, [b"\0\0\0\0"], [3], Layout.image(1, 3), ["samples"])
    packed = bytearray(tzip.compress(b"not a recording, " * 20, model=tiny, methods=("context",)))
    at = packed.index(C.FRAME_SEGMENT + bytes([C.CONTEXT]))
    packed[at + 1] = C.SAMPLES
    with pytest.raises(TzipError, match="corrupted"):
        tzip.decompress(bytes(packed), model=tiny)


def test_damaged_samples_segment_fails_cleanly(samples):
    packed = tzip.compress(samples["wav_mono"], methods=("samples",))
    at = packed.index(C.FRAME_SEGMENT + bytes([C.SAMPLES]))
    bad = bytearray(packed)
    bad[at + 1 + C.SEGMENT.size + 10] ^= 0xFF
    with pytest.raises(TzipError, match="corrupted"):
        tzip.decompress(bytes(bad))
    bad = bytearray(packed)
    bad[at + 1] = C.CONTEXT  # decoding it the wrong way must not pass
    with pytest.raises(TzipError, match="corrupted"):
        tzip.decompress(bytes(bad))
