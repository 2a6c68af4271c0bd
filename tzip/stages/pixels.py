"""The pixel model: a classical 2-D predictor's distribution, mixed with the network's.

On photographs the 590k-parameter network alone codes worse than PNG's filters and far worse
than JPEG-XL: it sees the neighbours as four embeddings but has had little image training. The
lossless image coders' tools are cheap and adapt to each picture at once:

- ten sub-predictors (W, N, W+N-NW, W+NE-N, NE+N-NNE, 2W-WW, ...) and, for the second and
  later channels of a pixel, six more: a neighbour (N, W, NE, NW, their mean, W+N-NW) plus the
  change the pixel's previous channel showed from its own at that neighbour; blended
  by the inverse cube of the errors each made at ten causal neighbours (W, N, NW, NE and the
  six beyond them: GraLIC, JPEG-XL's weighted predictor);
- a correction of the blend by an NLMS filter over the neighbours' offsets from it (the online
  linear predictors of TMW, MRP and paq8px, here learning what the fixed blend misses), itself
  blended with the blend by their errors nearby: -1.0 % on the bench images;
- a context of local activity (the prediction's errors at the neighbours, WW and NN plus the gradients), in which
  the prediction's bias is corrected (CALIC) and the error's scale is learnt, per channel;
- a residual filter, a second NLMS over the prediction's signed errors at fourteen neighbours
  (errors of one sign cluster: smooth gradients, edges; -1.0 % on the bench images);
- a discretised logistic at the refined prediction with that scale.

A second distribution q2 comes from the same sub-predictors blended by their errors two and four
pixels away, with its own activity there (the period-two model: images repeating with period two,
as 2x-upscaled ones do, are then all but certain), and a third q3 at q's centre from a texture
context (CALIC's). All are mixed geometrically with the incoming frequencies (network, match
model, context counts): p(x) ~ f(x)^a q(x)^b q2(x)^c q3(x)^d, with the weights
learnt while coding by gradient steps on the code length (as PAQ's mixers learn), each the mean
of four sets' weights: by activity, by how peaked f is, by how far f's likeliest byte lies
from the prediction and by the period-two activity (-0.45 %).

Integer arithmetic throughout, so every machine computes the same frequencies (docs/DESIGN.md §2): the
logistic CDF, log2 and exp2 tables are computed exactly (decimal arithmetic, integer rounding),
divisions are of non-negative integers or floored explicitly. This file is the reference and
the fallback; tzip/native/pixels.c computes the same integers fast, tests pin the two.
Segments coded this way are container method 6 ("pixels"), offered for images only.
"""

from __future__ import annotations

import numpy as np

from tzip.engine.library import library
from tzip.format.layout import IMAGE, Layout
from tzip.stages.mixing import (
    CDF_ONE,
    cdf_at,
    floor_div,
    logistic_tables,
    mix,
    mixing_steps,
    nlms,
    octave_bucket,
    step_weights,
)
from tzip.stages.protocol import STAGE_KINDS, StateBatch, apply_stage

SUB = 16  # sub-predictors; the last six only on a pixel's second and later channels
SPATIAL = 10
# The causal neighbours (rows up, pixels right) whose errors weigh each sub-predictor: the
# nearest four, and six more a step further, which let the blend see structure of period two
# (2x-upscaled images code 6 % smaller) and steady it on photographs (-0.9 % on training slices)
NEIGHBOURS = ((0, -1), (1, 0), (1, -1), (1, 1), (0, -2), (2, 0), (2, -1), (2, 1), (1, -2), (1, 2))
BLEND_ONE = 1 << 50  # weights BLEND_ONE / (summed error + 4)^3: >= 2 for any error (< 2^17), sums < 2^62
PRED_OFFSET = 8192  # above the lowest sub-prediction's magnitude (3 x 2040): the blend divides non-negatives
ACT_EDGES = tuple(8 * e for e in (1, 2, 3, 4, 6, 8, 11, 15, 20, 27, 36, 50, 70, 100, 140))
CELLS = len(ACT_EDGES) + 1
CHANNEL_SETS = 4  # statistics and mixing weights per channel (the fourth and later share)
HALVE_AT = 256  # a context's statistics halve past this many pixels
MIX_START = (19661, 22938, 22938, 0)  # the weights of f, q, q2, q3 in 1/65536 (0.3, 0.35, 0.35, 0)
# The correction stage: an NLMS filter on the offsets from the blend of fourteen neighbours (and,
# on later channels, of the six inter-channel sub-predictions, and four more from the channel two
# back) learns the blend's miss
LMS_TAPS = 14 + SUB - SPATIAL + 4
LMS_STEP = 2621  # mu = 0.04, in 1/65536
LMS_FLOOR = 1024  # added to the taps' energy: 4 grey levels squared, in eighths
LMS_WEIGHT_MAX = 1 << 20  # weights in 1/65536, clamped to +-16
# The residual filter: an NLMS filter over the prediction's errors at fourteen neighbours (those
# of the pixel's earlier channels among them) learns what is left of them here (-1.0 % on the
# bench images), with weights per channel set and quarter of the activity cells
RESIDUAL_TAPS = 14
RESIDUAL_STEP = 1311  # mu = 0.02
RESIDUAL_FLOOR = 4096
# The mixing weights are the mean of four sets': by activity cell, by the incoming distribution's
# peak (its doublings above 256), by how far its most probable byte lies from the prediction, and
# by the period-two model's cell
PEAK_BUCKETS, AGREEMENT_BUCKETS = 9, 6
# The period-two model, a second logistic q2 mixed in: the sub-predictors blended by their errors
# two and four pixels away (rows up, pixels right), a bias and scale by its own misses there.
# Where an image repeats with period two (2x upscaling, dithering, Bayer-like patterns) it is all
# but certain; elsewhere it is a second opinion (moon.pgm's bench segment -35 %, the bench -1.1 %)
PERIOD_TWO = ((0, -2), (2, 0), (2, -2), (2, 2), (0, -4), (4, 0))
# The texture model, a third logistic q3 at q's centre: its bias and scale by which of W, N, NW, NE
# lie above the prediction and the activity's quarter (CALIC's texture context; -0.15 %)
TEXTURES = 16 * 4


def cell(v: int) -> int:
    i = 0
    while i < len(ACT_EDGES) and v >= ACT_EDGES[i]:
        i += 1
    return i


def logistic(mu8: int, mae64: int) -> np.ndarray:
    """Frequencies (total 2^16, each >= 1) of a logistic at mu8/8 with scale 0.7 * mae64/64: the CDF at
    each byte's upper edge, z = (8v + 4 - mu8) / (0.7 mae64 / 8), in steps of 1/32 of the table."""
    c = cdf_at(2560 * (4 - mu8) + 20480 * np.arange(256, dtype=np.int64), 7 * mae64)
    c[255] = CDF_ONE
    return np.diff(c, prepend=0) + 1


def inverse_cube_blend(predictions: list[int], misses: list[int]) -> int:
    """Predictions weighted by BLEND_ONE / (miss + 4)^3, rounded (GraLIC's and JPEG-XL's weighting)."""
    num = den = 0
    for p, e in zip(predictions, misses):
        w = BLEND_ONE // (e + 4) ** 3
        num += w * (p + PRED_OFFSET)
        den += w
    return (num + den // 2) // den - PRED_OFFSET


def clamp_prediction(p: int) -> int:
    """A corrected prediction (eighths of a grey level) kept within a quarter of the range around it."""
    return min(max(p, -512), 2552)


class CellStats:
    """A running bias and mean absolute error per cell, halved past HALVE_AT pixels (CALIC)."""

    def __init__(self, cells: int):
        self.sum_e, self.sum_a, self.count = [0] * cells, [16] * cells, [1] * cells

    def centre_and_scale(self, base: int, c: int, local: int | None) -> tuple[int, int]:
        """The logistic's centre (base + bias, within the byte range) and scale (1/64 grey level)."""
        mae = 8 * self.sum_a[c] // self.count[c]
        if local is not None:
            mae = (3 * mae + local) // 4
        return min(max(base + floor_div(self.sum_e[c], self.count[c]), 0), 2040), max(mae, 19)

    def update(self, c: int, v: int, base: int, centre: int) -> None:
        self.sum_e[c] += v - base
        self.sum_a[c] += abs(v - centre)
        self.count[c] += 1
        if self.count[c] > HALVE_AT:
            self.sum_e[c] = floor_div(self.sum_e[c], 2)
            self.sum_a[c] >>= 1
            self.count[c] >>= 1


class SegmentPixels:
    """One image segment's predictor state; predict then update at each position in turn."""

    def __init__(self, layout: Layout, length: int):
        self.row, self.channels = layout.offsets[1], layout.period
        self.errors = np.zeros((length, SUB), dtype=np.int64)  # |8x - P_k| at each position
        self.blend_error = np.zeros(length, dtype=np.int64)  # 8x - P (blended, corrected; not refined)
        self.blend_miss = np.zeros(length, dtype=np.int64)  # |8x - blend|
        self.lms_miss = np.zeros(length, dtype=np.int64)  # |8x - corrected blend|
        self.period_two_miss = np.zeros(length, dtype=np.int64)  # |8x - the period-two model's base|
        self.lms = [[0] * LMS_TAPS for _ in range(CHANNEL_SETS)]
        self.residual_weights = [[0] * RESIDUAL_TAPS for _ in range(CHANNEL_SETS * 4)]
        # the cells of q, q2 and q3
        self.experts = [CellStats(n * CHANNEL_SETS) for n in (CELLS, CELLS, TEXTURES)]
        self.weights = [list(MIX_START) for _ in range(CELLS * CHANNEL_SETS)]
        self.peak_weights = [list(MIX_START) for _ in range(PEAK_BUCKETS * CHANNEL_SETS)]
        self.agreement_weights = [list(MIX_START) for _ in range(AGREEMENT_BUCKETS * CHANNEL_SETS)]
        self.period_two_weights = [list(MIX_START) for _ in range(CELLS * CHANNEL_SETS)]

    def _predict(self, hist, t: int) -> None:
        R, C = self.row, self.channels
        x = lambda i: 8 * int(hist[i])  # noqa: E731
        col = t % R
        left, up, right = col >= C, t >= R, col + C < R
        W = x(t - C) if left else x(t - R) if up else 1024
        N = x(t - R) if up else W
        NW = x(t - R - C) if up and left else N
        NE = x(t - R + C) if up and right else N
        WW = x(t - 2 * C) if col >= 2 * C else W
        NN = x(t - 2 * R) if t >= 2 * R else N
        NNE = x(t - 2 * R + C) if t >= 2 * R and right else NE
        inter = C > 1 and col % C > 0
        later = C > 2 and col % C >= 2  # a third or later channel: the channel two back exists
        channel_set = min(col % C, CHANNEL_SETS - 1)
        P = [W, N, W + N - NW, W + NE - N, (W + NE) >> 1, N + NE - NNE, 2 * W - WW, (N + NW) >> 1,
             (W + N) >> 1, 2 * N - NN] + [0] * (SUB - SPATIAL)
        if inter:  # the neighbour plus the change the pixel's previous channel showed from its own
            cur = x(t - 1)
            Nc = x(t - 1 - R) if up else cur
            Wc = x(t - 1 - C) if left else cur
            NWc = x(t - 1 - R - C) if up and left else Nc
            P[10:] = [N + cur - Nc, W + cur - Wc, NE + cur - (x(t - 1 - R + C) if up and right else Nc),
                      ((W + N) >> 1) + cur - ((Wc + Nc) >> 1), NW + cur - NWc, W + N - NW + cur - (Wc + Nc - NWc)]
        positions = lambda offsets: [  # noqa: E731
            t - dy * R + dx * C for dy, dx in offsets if t >= dy * R and 0 <= col + dx * C < R]
        near, apart = positions(NEIGHBOURS), positions(PERIOD_TWO)
        used = P[:SUB if inter else SPATIAL]
        errors = self.errors[:, :len(used)]
        blend, self.base2 = (inverse_cube_blend(used, [int(errors[where, k].sum()) for k in range(len(used))])
                             for where in (near, apart))
        at = lambda dy, dx, fallback: x(t - dy * R + dx * C) if t >= dy * R and 0 <= col + dx * C < R else fallback  # noqa: E731
        NNW = at(2, -1, NW)
        values = [W, N, NW, NE, WW, NN, NNE, NNW, at(1, -2, NW), at(1, 2, NE), at(0, -3, WW), at(3, 0, NN),
                  at(2, -2, NNW), at(2, 2, NNE)] + (P[SPATIAL:] if inter else [])
        if later:  # as P[10:] from the channel two back (blue from red)
            c2 = x(t - 2)
            N2 = x(t - 2 - R) if up else c2
            W2 = x(t - 2 - C) if left else c2
            NE2 = x(t - 2 - R + C) if up and right else N2
            NW2 = x(t - 2 - R - C) if up and left else N2
            values += [N + c2 - N2, W + c2 - W2, NE + c2 - NE2, W + N - NW + c2 - (W2 + N2 - NW2)]
        self.taps = [v - blend for v in values]
        w = self.lms[channel_set]
        corrected = clamp_prediction(blend + floor_div(sum(w[k] * d for k, d in enumerate(self.taps)), 1 << 16))
        # the blend and its correction, weighed as the sub-predictors are by their misses nearby
        misses = [sum(int(miss[i]) for i in near) for miss in (self.blend_miss, self.lms_miss)]
        pred = inverse_cube_blend([blend, corrected], misses)
        self.blend, self.corrected = blend, corrected
        be = self.blend_error
        miss = lambda errors, dy, dx: (  # noqa: E731
            abs(int(errors[t - dy * R + dx * C])) if t >= dy * R and 0 <= col + dx * C < R else 0)
        beside = miss(be, 0, -1) + miss(be, 1, 0) + ((miss(be, 1, -1) + miss(be, 1, 1)) >> 1)
        act = beside
        if inter:
            act += abs(int(be[t - 1]))
        act += (abs(W - NW) + abs(N - NW) + abs(N - NE)) >> 1
        act += ((abs(int(be[t - 2 * C])) if col >= 2 * C else 0) + (abs(int(be[t - 2 * R])) if t >= 2 * R else 0)) >> 1
        act += abs(blend - corrected)  # where the two disagree, the pixel is less certain
        c = cell(act) + CELLS * channel_set
        error_at = lambda i, there: int(be[i]) if there else 0  # noqa: E731
        self.residual_taps = [
            error_at(t - C, left), error_at(t - R, up), error_at(t - R - C, up and left),
            error_at(t - R + C, up and right), error_at(t - 2 * C, col >= 2 * C), error_at(t - 2 * R, t >= 2 * R),
            error_at(t - 1, inter), error_at(t - 2, later),
            error_at(t - 2 * R - C, t >= 2 * R and left), error_at(t - 2 * R + C, t >= 2 * R and right),
            error_at(t - R - 2 * C, up and col >= 2 * C), error_at(t - R + 2 * C, up and col + 2 * C < R),
            error_at(t - 1 - R, inter and up), error_at(t - 1 - C, inter and left)]
        self.residual_set = channel_set * 4 + (c % CELLS >> 2)
        w = self.residual_weights[self.residual_set]
        refined = clamp_prediction(pred + floor_div(sum(w[k] * e for k, e in enumerate(self.residual_taps)), 1 << 16))
        self.P, self.pred, self.refined, self.channel_set = P, pred, refined, channel_set
        p2 = self.period_two_miss  # the period-two model's activity: its own misses two and four away
        act2 = miss(p2, 0, -2) + miss(p2, 2, 0) + ((miss(p2, 2, -2) + miss(p2, 2, 2)) >> 1)
        act2 += (miss(p2, 0, -4) + miss(p2, 4, 0)) >> 1
        if inter:
            act2 += int(p2[t - 1])
        texture = (W > refined) | (N > refined) << 1 | (NW > refined) << 2 | (NE > refined) << 3
        self.bases = (refined, self.base2, refined)
        self.cells = (c, cell(act2) + CELLS * channel_set, texture * 4 + (c % CELLS >> 2) + TEXTURES * channel_set)
        # q's scale leans a quarter on the errors just beside (-0.17 %)
        local = 8 * beside // 3
        experts = zip(self.experts, self.bases, self.cells, (local, None, None))
        self.centres, self.scales = zip(*(expert.centre_and_scale(*args) for expert, *args in experts))

    def predict(self, hist, t: int, freq: np.ndarray) -> None:
        """Mix position t's frequencies with the predictor's distribution, in place."""
        self._predict(hist, t)
        self.f_in = freq.astype(np.int64)
        self.inputs = (self.f_in, *(logistic(mu, mae) for mu, mae in zip(self.centres, self.scales)))
        peak, likeliest = int(self.f_in.max()), int(np.argmax(self.f_in))
        p = 0
        while p < PEAK_BUCKETS - 1 and peak >= 256 << p:
            p += 1
        d = abs(8 * likeliest - self.centres[0]) >> 3
        g = 0 if d == 0 else 1 if d == 1 else 2 if d < 4 else 3 if d < 8 else 4 if d < 16 else 5
        self.weight_sets = (self.weights[self.cells[0]], self.peak_weights[p + PEAK_BUCKETS * self.channel_set],
                            self.agreement_weights[g + AGREEMENT_BUCKETS * self.channel_set],
                            self.period_two_weights[self.cells[1]])
        self.out = mix(self.inputs, tuple(sum(ws[i] for ws in self.weight_sets) // 4 for i in range(len(MIX_START))))
        freq[:] = self.out

    def update(self, hist, t: int) -> None:
        self.learn(hist, t)
        steps = mixing_steps(self.out, self.inputs, int(hist[t]))
        for weights in self.weight_sets:
            step_weights(weights, steps)

    def hint(self, hist, t: int) -> tuple[int, int]:
        """The centre at t as a byte and its spread's bucket (hints.py; the network plays no part)."""
        self._predict(hist, t)
        return (self.centres[0] + 4) >> 3, octave_bucket(self.scales[0], 2, 8)

    def learn(self, hist, t: int) -> None:
        """What the predictor learns from byte t: everything but the mixing weights."""
        v = 8 * int(hist[t])
        for k in range(SUB):
            self.errors[t, k] = abs(v - self.P[k])
        self.blend_error[t] = v - self.pred
        self.blend_miss[t], self.lms_miss[t] = abs(v - self.blend), abs(v - self.corrected)
        self.period_two_miss[t] = abs(v - self.base2)
        nlms(self.lms[self.channel_set], self.taps, v - self.corrected, LMS_STEP, LMS_FLOOR, LMS_WEIGHT_MAX)
        nlms(self.residual_weights[self.residual_set], self.residual_taps, v - self.refined, RESIDUAL_STEP,
             RESIDUAL_FLOOR, LMS_WEIGHT_MAX)
        for expert, c, base, mu in zip(self.experts, self.cells, self.bases, self.centres):
            expert.update(c, v, base, mu)


def applies(layout: Layout) -> bool:
    """Image layouts only: the predictor needs a row length and the channels of a pixel."""
    return layout.modality == IMAGE and layout.offsets[1] > 0 and layout.period >= 1


def apply(symbols: np.ndarray, freqs: np.ndarray, layout: Layout, native: bool = True,
          in_place: bool = False) -> np.ndarray:
    """The mixed frequencies [T, 256] of a whole image segment (compression); in_place rewrites
    `freqs` (int32, C order). native=False runs this reference (tests compare the two)."""
    if not applies(layout):
        raise ValueError("the pixel model needs an image layout")
    return apply_stage(symbols, freqs, in_place, library() if native else None, "tzip_pixels_scan",
                       (layout.offsets[1], layout.period, *logistic_tables()), lambda n: SegmentPixels(layout, n),
                       "the pixel model")


class PixelsBatch(StateBatch):
    """The pixel models of a batch of segments decoded in lock-step (protocol.StateBatch)."""

    KIND = STAGE_KINDS["pixels"]

    def __init__(self, use: list[bool], history: np.ndarray, layout: Layout):
        row, channels, length = layout.offsets[1], layout.period, history.shape[1]
        super().__init__(use, history, library(), "tzip_pixels", "the pixel model",
                         lambda lib: lib.tzip_pixels_new(row, channels, length, *logistic_tables()),
                         lambda: SegmentPixels(layout, length))
