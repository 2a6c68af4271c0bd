"""The pixel model: exact tables, C and Python give the same integers, decompression's steps give
compression's frequencies, and method 6 ("pixels") segments round-trip and fail cleanly; method 12
("classical-pixels") runs the same stages over a uniform distribution where the network loses."""

from __future__ import annotations

import numpy as np
import pytest

import tzip
from tzip.codec.encoder import PROBE_MARGIN, PROBE_ROWS, code_length
from tzip.engine import native
from tzip.format import container as C
from tzip.format.detect import split_bytes
from tzip.format.layout import Layout
from tzip.stages import mixing, pixels

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

needs_c = pytest.mark.skipif(not native.available(), reason="the C library is unavailable")


def photo(samples, key: str) -> tuple[np.ndarray, Layout]:
    _, payload, _, split = split_bytes(samples[key])
    return np.frombuffer(payload, dtype=np.uint8), split.layout


def images(samples) -> list[tuple[np.ndarray, Layout]]:
    """Real grey and RGB crops, a BMP (rows padded to 4 bytes), and synthetic edge cases."""
    rng = np.random.default_rng(3)
    out = [photo(samples, k) for k in ("pgm", "ppm", "bmp")]
    out.append((rng.integers(0, 256, 900, dtype=np.uint8), Layout.image(3, 30)))  # noise
    out.append((rng.choice(np.array([0, 255], dtype=np.uint8), 1200), Layout.image(3, 60)))  # extremes across channels
    out.append((np.full(700, 255, dtype=np.uint8), Layout.image(1, 35)))  # flat white: clamps at the top
    out.append((np.array([7], dtype=np.uint8), Layout.image(1, 1)))  # one pixel
    out.append((np.arange(40, dtype=np.uint8) * 6, Layout.image(4, 8)))  # RGBA, two pixels a row
    return out


def test_tables_are_exact_and_consistent():
    assert mixing.CDF[0] == 0 and mixing.CDF[-1] == mixing.CDF_ONE
    assert mixing.CDF[len(mixing.CDF) // 2] == mixing.CDF_ONE // 2
    assert (np.diff(mixing.CDF) >= 0).all()
    assert mixing.COST[mixing.ONE] == 0 and mixing.COST[1] == 16 * mixing.LOG_ONE
    f = np.arange(1, mixing.ONE + 1)
    assert np.abs(mixing.COST[1:] - (16 - np.log2(f)) * mixing.LOG_ONE).max() < 2  # 1/700 bit
    assert mixing.EXP2[0] == 1 << 24
    assert abs(mixing.EXP2[512] - 2**23.5) <= 1 and mixing.EXP2[-1] > 1 << 23


def test_logistic_frequencies():
    q = pixels.logistic(8 * 100, 64 * 2)
    assert q.sum() == mixing.ONE and q.min() >= 1 and int(np.argmax(q)) == 100
    assert q[99] == pytest.approx(q[101], abs=2)  # symmetric about the prediction
    wide = pixels.logistic(8 * 100, 64 * 20)
    assert wide.max() < q.max() / 4
    edge = pixels.logistic(0, 19)  # all but certain of 0
    assert edge[0] > 0.9 * mixing.ONE and edge.sum() == mixing.ONE


def reference(x: np.ndarray, f: np.ndarray, layout: Layout) -> np.ndarray:
    return pixels.apply(x, f, layout, native=False)


@needs_c
def test_c_scan_equals_python(samples):
    for i, (x, layout) in enumerate(images(samples)):
        f = network_like(x, i)
        got = pixels.apply(x, f, layout)
        assert np.array_equal(got, reference(x, f, layout)), i
        assert (got >= 1).all() and (got.sum(1) == mixing.ONE).all()


def test_the_predictor_learns_a_picture(samples):
    """On a real photograph the pixel model codes far shorter than a flat prediction, and it is
    not fooled into doing much worse than a good network prediction on noise."""
    x, layout = photo(samples, "pgm")
    flat = np.full((len(x), 256), mixing.ONE // 256, dtype=np.int32)
    assert code_length(x, pixels.apply(x, flat, layout)) < 0.75 * code_length(x, flat)
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)
    flat = np.full((len(noise), 256), mixing.ONE // 256, dtype=np.int32)
    assert code_length(noise, pixels.apply(noise, flat, Layout.image(1, 64))) < 1.03 * code_length(noise, flat)


@pytest.mark.parametrize("channels", [1, 3])
def test_a_twice_upscaled_image_costs_little_more_than_its_source(channels):
    """Noise upscaled 2x by pixel replication holds a quarter of the bytes' information; the
    period-two model must find the copies (without it, 0.67 of a flat code; the source alone
    is 0.25)."""
    source = np.random.default_rng(5).integers(0, 256, (24, 24, channels), dtype=np.uint8)
    x = np.ascontiguousarray(source.repeat(2, 0).repeat(2, 1).reshape(-1))
    flat = np.full((len(x), 256), mixing.ONE // 256, dtype=np.int32)
    coded = pixels.apply(x, flat, Layout.image(channels, 48 * channels))
    assert code_length(x, coded) < 0.35 * code_length(x, flat)


def test_only_image_layouts():
    x = np.zeros(10, dtype=np.uint8)
    assert not pixels.applies(Layout.text()) and pixels.applies(Layout.image(3, 30))
    with pytest.raises(ValueError):
        pixels.apply(x, network_like(x), Layout.text())


@pytest.mark.parametrize("engine", ["c", "python"])
def test_batch_steps_equal_whole_segment_scan(engine, samples, monkeypatch):
    x, layout = photo(samples, "ppm")
    segs = [x[:1440], x[1440:2160], x[2160:4320]]
    ways = ["pixels", "context", "pixels"]
    batch_equals_scan(engine, monkeypatch, pixels, pixels.PixelsBatch, segs, ways, layout)


def test_coder_round_trip_and_choice(tiny, samples):
    x, layout = photo(samples, "pgm")
    segs = [bytes(x[:2048]), bytes(x[2048:])]
    coder_round_trip(tiny, "pixels", segs, layout)


def test_api_round_trips_with_the_pixel_model(samples):
    for key in ("pgm", "ppm", "bmp", "tiff"):
        data = samples[key]
        packed = tzip.compress(data)
        assert tzip.decompress(packed) == data
        model_less = tuple(m for m in tzip.api.METHODS if m not in ("pixels", "classical-pixels"))
        without = tzip.compress(data, methods=model_less)
        assert len(packed) <= len(without), key
    assert len(tzip.compress(samples["pgm"])) < 0.9 * len(tzip.compress(samples["pgm"], methods=("context",)))


def test_a_pixels_segment_outside_an_image_is_refused(tiny):
    refused_elsewhere(tiny, "pixels", C.PIXELS, Layout.text())


def test_damaged_pixels_segment_fails_cleanly(samples):
    packed = tzip.compress(samples["pgm"], methods=("pixels",))
    damaged_fails(packed, C.PIXELS)


def test_tables_equal_their_decimal_definition_at_every_entry():
    """The float64 shortcut (mixing._rounded) gives what Decimal's exact rounding gives everywhere."""
    ctx = mixing._EXACT

    def exact(fn, n: int) -> np.ndarray:
        return np.array([int(fn(i).to_integral_value(context=ctx)) for i in range(n)])

    z = np.arange(-mixing.CDF_RANGE * mixing.CDF_STEPS, mixing.CDF_RANGE * mixing.CDF_STEPS + 1)
    assert np.array_equal(mixing.CDF, exact(lambda i: mixing._cdf_exact(int(z[i])), len(z)))
    assert np.array_equal(mixing.LOG_FRAC, exact(mixing._log_exact, 257))
    assert np.array_equal(mixing.EXP2, exact(mixing._exp_exact, mixing.LOG_ONE))
    assert np.array_equal(mixing.SQUASH, np.clip(exact(mixing._squash_exact, 4096), 1, 4095))


def test_classical_pixels_are_method_6s_stages_over_a_uniform_distribution(tiny, samples, monkeypatch):
    x, layout = photo(samples, "ppm")
    uniform_twin(tiny, "classical-pixels", "pixels", [bytes(x[:2048]), bytes(x[2048:4096])], layout, Layout.text(),
                 monkeypatch, pixels)


def test_an_image_codes_without_the_network_where_the_network_loses(misled, samples):
    chosen_under_a_misled_network(misled, samples["ppm"], "classical-pixels", C.CLASSICAL_PIXELS)


def test_a_classical_pixels_segment_outside_an_image_is_refused(tiny):
    refused_elsewhere(tiny, "classical-pixels", C.CLASSICAL_PIXELS, Layout.text())


def test_damaged_classical_pixels_segment_fails_cleanly(samples):
    packed = tzip.compress(samples["pgm"], methods=("classical-pixels",))
    damaged_fails(packed, C.CLASSICAL_PIXELS)


def test_a_network_far_ahead_stops_the_pixels_twin_after_the_probe_unless_its_margin_says_not(tiny, monkeypatch):
    """Method 12 stops at the probe where the network leads by more than its PROBE_MARGIN (1 %), and
    runs to the end beside the network's way where the lead is within it."""
    rng = np.random.default_rng(5)
    side = 160  # 25,600 pixels: longer than the probe
    grey = np.add.outer(np.arange(side), np.arange(side)) + rng.integers(0, 8, (side, side))
    x = np.clip(grey, 0, 255).astype(np.uint8).ravel()
    layout = Layout.image(1, side)
    assert len(x) > PROBE_ROWS
    assert twin_rows_under_a_leading_network(tiny, monkeypatch, "pixels", "classical-pixels", x, layout) == PROBE_ROWS
    monkeypatch.setitem(PROBE_MARGIN, "classical-pixels", 1.0)  # no lead is past a margin of 100 %
    assert twin_rows_under_a_leading_network(tiny, monkeypatch, "pixels", "classical-pixels", x, layout) == len(x)
