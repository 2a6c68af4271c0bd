"""The sample model: an adaptive linear predictor of 16-bit audio, mixed with the network.

FLAC, WavPack and Monkey's Audio beat the small network on audio with one idea: predict each
sample from the previous ones with a linear filter fitted to this recording, and code the error.
The network sees the previous samples only as byte embeddings. This stage runs that filter on the
segment's 16-bit values (as modelled: MSB first, per channel): FLAC's fixed order-2 prediction
plus a 64-tap NLMS filter (normalised least mean squares, step 0.5) over the previous samples,
plus a 16-tap one (step 0.1) over that filter's previous errors (a cascade, as Monkey's Audio
has), adapting sample by sample. The error's scale is learnt per channel in 12 cells of recent
error size; a discretised logistic at the prediction with 0.5 x that scale gives the high
byte's distribution (its mass over each block of 256 values) and then, given the high byte, the
low byte's. Each is mixed with the incoming frequencies (network and match model; the context
counts gain audio 0.1 % and cost decoding speed, so they are not under this stage) as pixels.py
mixes images: p ~ f^a q^b, a and b learnt per byte half and cell.

Integer arithmetic throughout (pixels.py's exact tables; filter weights in 1/2^16, predictions
in 1/16 of a sample), so every machine computes the same frequencies (docs/DESIGN.md §2). This file is
the reference and the fallback; tzip/native/samples.c computes the same integers fast.
Segments coded this way are container method 7 ("samples"), offered for 16-bit PCM layouts only.
"""

from __future__ import annotations

import numpy as np

from tzip.engine.library import library
from tzip.format.detect import pcm16_channels
from tzip.format.layout import Layout
from tzip.stages.mixing import CDF_ONE, cdf_at, floor_div, learn, logistic_tables, mix, normalise, octave_bucket
from tzip.stages.protocol import STAGE_KINDS, StateBatch, apply_stage

# Filter shapes chosen on training speech (ideal bits/byte: 32 taps 5.148, + the 16-tap second
# stage 5.006, 64 taps and scale 0.5 4.955).
ORDER = 64  # NLMS taps over the previous samples
STEP = 2048  # its step 0.5 (best of 0.2, 0.5, 1) times 2^12: weights in 1/2^16, errors in 1/16
NORM_FLOOR = 1000  # added to the taps' energy (in samples^2) before dividing by it
ORDER2, STEP2, NORM_FLOOR2 = 16, 6554, 25600  # the second stage over the first's errors (1/16): step 0.1
WEIGHT_MAX = 1 << 24  # |weight| <= 256
PRED_MAX = 1 << 20
CELLS = 12  # cells of recent error size: below 4 samples, then doubling
HALVE_AT = 128
MIX_START = (32768, 32768)  # a, b in 1/65536 (0.5, 0.5)


def applies(layout: Layout) -> bool:
    return pcm16_channels(layout) > 0


def clamp(pred: int) -> int:
    """Predictions stay within twice the 16-bit range (in 1/16): errors then fit 22 bits and every
    filter product 64 bits, whatever the input."""
    return min(max(pred, -PRED_MAX), PRED_MAX)


def signed(v: int) -> int:
    return v - 65536 if v >= 32768 else v


class SegmentSamples:
    """One 16-bit audio segment's filter state; predict then update at each byte in turn."""

    def __init__(self, layout: Layout, length: int):
        self.channels = c = pcm16_channels(layout)
        self.frames = length // (2 * c)
        self.samples = np.zeros((c, self.frames), dtype=np.int64)
        self.errors = np.zeros((c, self.frames), dtype=np.int64)  # the first stage's, in 1/16
        self.weights = np.zeros((c, ORDER), dtype=np.int64)
        self.weights2 = np.zeros((c, ORDER2), dtype=np.int64)
        self.recent = np.zeros((c, 3), dtype=np.int64)  # the last three errors, in 1/16
        self.sum_a = np.full((c, CELLS), 200 * 16, dtype=np.int64)
        self.count = np.ones((c, CELLS), dtype=np.int64)
        self.mix_weights = [[list(MIX_START) for _ in range(CELLS)] for _ in range(2)]
        self.q = None  # this position's distribution, None where the stage passes frequencies on

    def _sample(self, t: int) -> tuple[int, int, int]:
        """(frame, channel, byte half) of position t, or frame -1 past the last whole frame."""
        frame, rest = divmod(t, 2 * self.channels)
        return (frame if frame < self.frames else -1), rest >> 1, rest & 1

    def _predict(self, ch: int, n: int) -> None:
        taps = np.array([self.samples[ch, n - 1 - k] if n - 1 - k >= 0 else 0 for k in range(ORDER)], dtype=np.int64)
        taps2 = np.array([self.errors[ch, n - 1 - k] if n - 1 - k >= 0 else 0 for k in range(ORDER2)], dtype=np.int64)
        base = 2 * int(taps[0]) - int(taps[1])
        self.taps, self.taps2 = taps, taps2
        self.pred1 = clamp(16 * base + floor_div(int((self.weights[ch] * taps).sum()), 1 << 12))
        self.pred = clamp(self.pred1 + floor_div(int((self.weights2[ch] * taps2).sum()), 1 << 16))
        r = self.recent[ch]
        act = abs(int(r[0])) + (abs(int(r[1])) >> 1) + (abs(int(r[2])) >> 2)
        c, edge = 0, 64
        while c < CELLS - 1 and act >= edge:
            c, edge = c + 1, edge * 2
        self.cell = c
        self.den = 5 * max(int(self.sum_a[ch, c]) // int(self.count[ch, c]), 8)  # 32 z = 320 (16 x - pred) / den

    def predict(self, hist, t: int, freq: np.ndarray) -> None:
        n, ch, half = self._sample(t)
        self.q = None
        if n < 0:
            return
        if half == 0:
            self._predict(ch, n)
            # the high byte h covers samples [256 s, 256 s + 255], s = h as a signed byte
            edges = cdf_at(320 * (16 * (256 * np.arange(-128, 129, dtype=np.int64)) - 8 - self.pred), self.den)
            edges[0], edges[-1] = 0, CDF_ONE
            mass = np.diff(edges)
            q = np.roll(mass, -128) + 1  # byte order: 0..127 then the negative 128..255
        else:
            s = signed(int(hist[t - 1]) << 8)
            edges = cdf_at(320 * (16 * (s + np.arange(257, dtype=np.int64)) - 8 - self.pred), self.den)
            q = normalise(256 * np.diff(edges) + 1)
        self.q, self.f_in = q, freq.astype(np.int64)
        a, b = self.mix_weights[half][self.cell]
        self.out = mix((self.f_in, q), (a, b))
        freq[:] = self.out

    def update(self, hist, t: int) -> None:
        if self.q is None:
            return
        half = t % (2 * self.channels) & 1
        learn(self.mix_weights[half][self.cell], self.out, (self.f_in, self.q), int(hist[t]))
        self.learn(hist, t)

    def hint(self, hist, t: int) -> tuple[int, int]:
        """The predicted sample's byte at t (at a low byte, within the high byte known) and the
        spread's bucket, or (256, 256) past the last whole frame (hints.py)."""
        n, ch, half = self._sample(t)
        if n < 0:
            return 256, 256
        if half == 0:
            self._predict(ch, n)
        v = min(max(floor_div(self.pred + 8, 16), -32768), 32767)
        byte = (v + 65536) >> 8 & 255 if half == 0 else min(max(v - signed(int(hist[t - 1]) << 8), 0), 255)
        return byte, octave_bucket(self.den // 5, 1, 3)

    def learn(self, hist, t: int) -> None:
        """What the filters learn from byte t: everything but the mixing weights."""
        n, ch, half = self._sample(t)
        if n < 0 or half == 0:
            return
        v = signed((int(hist[t - 1]) << 8) | int(hist[t]))
        e, e1 = 16 * v - self.pred, 16 * v - self.pred1
        for w, taps, err, step, floor in ((self.weights, self.taps, e1, STEP, NORM_FLOOR),
                                          (self.weights2, self.taps2, e, STEP2, NORM_FLOOR2)):
            factor = floor_div(err * step << 16, int((taps * taps).sum()) + floor)
            change = np.array([floor_div(factor * int(h), 1 << 16) for h in taps], dtype=np.int64)
            w[ch] = np.clip(w[ch] + change, -WEIGHT_MAX, WEIGHT_MAX)
        self.samples[ch, n], self.errors[ch, n] = v, e1
        c = self.cell
        self.sum_a[ch, c] += abs(e)
        self.count[ch, c] += 1
        if self.count[ch, c] > HALVE_AT:
            self.sum_a[ch, c] >>= 1
            self.count[ch, c] >>= 1
        self.recent[ch] = [e, self.recent[ch, 0], self.recent[ch, 1]]


def apply(symbols: np.ndarray, freqs: np.ndarray, layout: Layout, native: bool = True,
          in_place: bool = False) -> np.ndarray:
    """The mixed frequencies [T, 256] of a whole 16-bit audio segment (compression); in_place
    rewrites `freqs` (int32, C order). native=False runs this reference (tests compare the two)."""
    if not applies(layout):
        raise ValueError("the sample model needs a 16-bit PCM layout")
    return apply_stage(symbols, freqs, in_place, library() if native else None, "tzip_samples_scan",
                       (pcm16_channels(layout), *logistic_tables()), lambda n: SegmentSamples(layout, n),
                       "the sample model")


class SamplesBatch(StateBatch):
    """The sample models of a batch of segments decoded in lock-step (protocol.StateBatch)."""

    KIND = STAGE_KINDS["samples"]

    def __init__(self, use: list[bool], history: np.ndarray, layout: Layout):
        channels, length = pcm16_channels(layout), history.shape[1]
        super().__init__(use, history, library(), "tzip_samples", "the sample model",
                         lambda lib: lib.tzip_samples_new(channels, length, *logistic_tables()),
                         lambda: SegmentSamples(layout, length))
