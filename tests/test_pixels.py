"""The pixel model: exact tables, C and Python give the same integers, decompression's steps give
compression's frequencies, and method 6 ("pixels") segments round-trip and fail cleanly."""

from __future__ import annotations

import numpy as np
import pytest

import tzip
from tzip import container as C
from tzip import counts, match, native, pixels
from tzip.coder import CoderError, best_way, code_length, decode_segments, encode_segments
from tzip.context import Layout
from tzip.errors import TzipError
from tzip.modality import split_bytes

from .test_match import lock_step, network_like

needs_c = pytest.mark.skipif(not native.available(), reason="no C compiler")


def photo(samples, key: str) -> tuple[np.ndarray, Layout]:
    _, payload, _, split = split_bytes(samples[key])
    return np.frombuffer(payload, dtype=np.uint8), split.layout


def images(samples) -> list[tuple[np.ndarray, Layout]]:
    """Real grey and RGB crops, a BMP (rows padded to 4 bytes), and synthetic edge cases."""
    rng = np.random.default_rng(3)
    out = [photo(samples, k) for k in ("pgm", "ppm", "bmp")]
    out.append((rng.integers(0, 256, 900, dtype=np.uint8), Layout.image(3, 30)))  # noise
    out.append((np.full(700, 255, dtype=np.uint8), Layout.image(1, 35)))  # flat white: clamps at the top
    out.append((np.array([7], dtype=np.uint8), Layout.image(1, 1)))  # one pixel
    out.append((np.arange(40, dtype=np.uint8) * 6, Layout.image(4, 8)))  # RGBA, two pixels a row
    return out


def test_tables_are_exact_and_consistent():
    assert pixels.CDF[0] == 0 and pixels.CDF[-1] == pixels.CDF_ONE
    assert pixels.CDF[len(pixels.CDF) // 2] == pixels.CDF_ONE // 2
    assert (np.diff(pixels.CDF) >= 0).all()
    assert pixels.COST[pixels.ONE] == 0 and pixels.COST[1] == 16 * pixels.LOG_ONE
    f = np.arange(1, pixels.ONE + 1)
    assert np.abs(pixels.COST[1:] - (16 - np.log2(f)) * pixels.LOG_ONE).max() < 2  # 1/700 bit
    assert pixels.EXP2[0] == 1 << 24
    assert abs(pixels.EXP2[512] - 2**23.5) <= 1 and pixels.EXP2[-1] > 1 << 23


def test_logistic_frequencies():
    q = pixels.logistic(8 * 100, 64 * 2)
    assert q.sum() == pixels.ONE and q.min() >= 1 and int(np.argmax(q)) == 100
    assert q[99] == pytest.approx(q[101], abs=2)  # symmetric about the prediction
    wide = pixels.logistic(8 * 100, 64 * 20)
    assert wide.max() < q.max() / 4
    edge = pixels.logistic(0, 19)  # all but certain of 0
    assert edge[0] > 0.9 * pixels.ONE and edge.sum() == pixels.ONE


def reference(x: np.ndarray, f: np.ndarray, layout: Layout) -> np.ndarray:
    return pixels.apply(x, f, layout, native=False)


@needs_c
def test_c_scan_equals_python(samples):
    for i, (x, layout) in enumerate(images(samples)):
        f = network_like(x, i)
        got = pixels.apply(x, f, layout)
        assert np.array_equal(got, reference(x, f, layout)), i
        assert (got >= 1).all() and (got.sum(1) == pixels.ONE).all()


def test_the_predictor_learns_a_picture(samples):
    """On a real photograph the pixel model codes far shorter than a flat prediction, and it is
    not fooled into doing much worse than a good network prediction on noise."""
    x, layout = photo(samples, "pgm")
    flat = np.full((len(x), 256), pixels.ONE // 256, dtype=np.int32)
    assert code_length(x, pixels.apply(x, flat, layout)) < 0.75 * code_length(x, flat)
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)
    flat = np.full((len(noise), 256), pixels.ONE // 256, dtype=np.int32)
    assert code_length(noise, pixels.apply(noise, flat, Layout.image(1, 64))) < 1.03 * code_length(noise, flat)


def test_only_image_layouts():
    x = np.zeros(10, dtype=np.uint8)
    assert not pixels.applies(Layout.text()) and pixels.applies(Layout.image(3, 30))
    with pytest.raises(ValueError):
        pixels.apply(x, network_like(x), Layout.text())


@pytest.mark.parametrize("engine", ["c", "python"])
def test_batch_steps_equal_whole_segment_scan(engine, samples, monkeypatch):
    """Decompression's lock-step batch (segments of unequal length, some coded without the pixel
    model) computes what compression computed over each whole segment."""
    if engine == "python":
        for module in (match, counts, pixels):
            monkeypatch.setattr(module, "_library", lambda: None)
    elif not native.available():
        pytest.skip("no C compiler")
    x, layout = photo(samples, "ppm")
    segs = [x[:1440], x[1440:2160], x[2160:4320]]
    ways = ["pixels", "context", "pixels"]
    freqs = [network_like(s, i) for i, s in enumerate(segs)]
    hist = np.zeros((len(segs), max(map(len, segs))), dtype=np.uint8)
    stages = [match.MatchBatch([True] * 3, hist),
              counts.CountsBatch([True] * 3, hist, counts.config("context", layout.modality)),
              pixels.PixelsBatch([w == "pixels" for w in ways], hist, layout)]
    got = lock_step(segs, freqs, stages, hist)
    for s, f, g, w in zip(segs, freqs, got, ways):
        assert np.array_equal(g, best_way(s, f, (w,), layout)[1])


def test_coder_round_trip_and_choice(tiny, samples):
    x, layout = photo(samples, "pgm")
    segs = [bytes(x[:2048]), bytes(x[2048:]), b""]
    coded = encode_segments(tiny, segs, layout, ("pixels",))
    assert [w for w, _ in coded[:2]] == ["pixels", "pixels"]
    assert decode_segments(tiny, [c for _, c in coded], [len(s) for s in segs], layout,
                           [w for w, _ in coded]) == segs
    every = encode_segments(tiny, segs[:1], layout, ("neural", "match", "context", "pixels"))[0]
    assert every[0] == "pixels" and every[1] == coded[0][1]  # the tiny network is no match for it
    text = encode_segments(tiny, [b"abcabcabd" * 30], Layout.text(), ("pixels",))[0]
    assert text[0] == "context"  # not an image: the pixel model's pipeline without it


def test_api_round_trips_with_the_pixel_model(samples):
    for key in ("pgm", "ppm", "bmp", "tiff"):
        data = samples[key]
        packed = tzip.compress(data)
        assert tzip.decompress(packed) == data
        without = tzip.compress(data, methods=tuple(m for m in tzip.api.METHODS if m != "pixels"))
        assert len(packed) <= len(without), key
    assert len(tzip.compress(samples["pgm"])) < 0.9 * len(tzip.compress(samples["pgm"], methods=("context",)))


def test_a_pixels_segment_outside_an_image_is_refused(tiny):
    with pytest.raises(CoderError):
        decode_segments(tiny, [b"\0\0\0\0"], [3], Layout.text(), ["pixels"])
    data = b"not a picture, " * 20
    packed = bytearray(tzip.compress(data, model=tiny, methods=("context",)))
    at = packed.index(C.FRAME_SEGMENT + bytes([C.CONTEXT]))
    packed[at + 1] = C.PIXELS
    with pytest.raises(TzipError, match="corrupted"):
        tzip.decompress(bytes(packed), model=tiny)


def test_damaged_pixels_segment_fails_cleanly(samples):
    packed = tzip.compress(samples["pgm"], methods=("pixels",))
    at = packed.index(C.FRAME_SEGMENT + bytes([C.PIXELS]))
    body = at + 1 + C.SEGMENT.size
    bad = bytearray(packed)
    bad[body + 10] ^= 0xFF
    with pytest.raises(TzipError, match="corrupted"):
        tzip.decompress(bytes(bad))
    bad = bytearray(packed)
    bad[at + 1] = C.CONTEXT  # decoding it the wrong way must not pass
    with pytest.raises(TzipError, match="corrupted"):
        tzip.decompress(bytes(bad))
    with pytest.raises(TzipError):
        tzip.decompress(packed[:-5])
