"""The context-count model: what this segment has taught about its order-1..6 contexts.

A network of 590k parameters knows the language in general, not this file: which words this
author repeats, which names follow "Mr.". PPM-style counts of the bytes that followed each
context of the last k bytes so far in the segment do. They are blended with the network (after
the match model) as a Dirichlet prior: for each order, lowest first, the distribution becomes

    p'(x) = (count(x) + beta * p(x)) / (total + beta)

so a context seen rarely keeps the network's prediction and one seen often follows its counts.
How many counts the network's prediction is worth (beta) depends on what the context has shown:
a context that saw one byte 5 times is nearly certain, one that saw 5 different bytes is not.
So beta comes from a table indexed by order, the context's total (10 cells) and how many
different bytes it saw (6 cells), fitted by minimum code length on text from the training
corpora (not the bench; docs/ABLATIONS.md). Counts halve when one reaches 255 so the model
follows change.

Two configurations are defined: CONTEXT (container method 5, orders 1-6 and the fitted table)
and CONTEXT1 (method 4, the first one: orders 2-4, beta 256, 64, 16 whatever the context saw),
which stays decodable.

Integer arithmetic throughout (frequencies total 2^16; the division is a 32-bit fixed-point
reciprocal; rounding leftovers go to the most probable byte), so every machine computes the
same frequencies (docs/DESIGN.md §2). Context statistics are exact (no hash collisions), so counts.c's
hash tables (tzip_counts_*) give the integers of this reference; tests/test_match.py pins them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tzip.engine.constants import FREQ_BITS
from tzip.engine.library import library
from tzip.format.layout import AUDIO, BINARY, IMAGE, TEXT
from tzip.stages.protocol import STAGE_KINDS, StateBatch, apply_stage

LIMIT = 255
ONE = 1 << FREQ_BITS
TOTAL_EDGES = (1, 2, 3, 4, 6, 9, 16, 32, 64, 128)  # a context's total count: the lower edge of each cell
DISTINCT_EDGES = (1, 2, 3, 4, 8, 16)  # bytes the context saw a non-zero count of


@dataclass(frozen=True)
class Config:
    """Which contexts are counted and how much the incoming prediction is worth against them."""

    orders: tuple[int, ...]
    beta: tuple[tuple[tuple[int, ...], ...], ...]  # [order][total cell][distinct cell], each >= 1

    def __post_init__(self):
        b = np.array(self.beta)
        if (not 1 <= len(self.orders) <= 8 or not all(1 <= k <= 8 for k in self.orders)
                or b.shape != (len(self.orders), len(TOTAL_EDGES), len(DISTINCT_EDGES))
                or b.min() < 1 or b.max() > 65535):
            raise ValueError("counts.Config: 1-8 orders of 1-8 bytes, a beta in 1..65535 per order and cell")

    @classmethod
    def flat(cls, orders: tuple[int, ...], priors: tuple[int, ...]) -> Config:
        """One beta per order, whatever its contexts saw."""
        return cls(orders, tuple(((p,) * len(DISTINCT_EDGES),) * len(TOTAL_EDGES) for p in priors))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Orders and beta as the int32 arrays counts.c takes."""
        return np.array(self.orders, dtype=np.int32), np.ascontiguousarray(self.beta, dtype=np.int32)


CONTEXT1 = Config.flat((2, 3, 4), (256, 64, 16))
# Fitted on 1 MB of training text (the middle 256 KiB of python-doc, perl-doc, sword-text-web and
# linux-documentation) by bench.priors --fit; rows: total cells, columns: distinct cells.
CONTEXT = Config((1, 2, 3, 4, 5, 6), (
    (  # order 1
        (33, 43, 54, 64, 72, 77),
        (36, 45, 56, 67, 77, 82),
        (46, 52, 60, 75, 87, 93),
        (53, 59, 73, 92, 105, 114),
        (66, 68, 84, 103, 132, 152),
        (87, 92, 101, 138, 192, 235),
        (126, 141, 153, 248, 410, 442),
        (176, 212, 273, 379, 950, 932),
        (217, 294, 446, 730, 2835, 2871),
        (231, 390, 635, 1965, 18300, 41167),
    ),
    (  # order 2
        (5, 12, 20, 28, 35, 38),
        (7, 16, 24, 32, 39, 42),
        (7, 18, 32, 40, 47, 51),
        (10, 22, 42, 54, 62, 67),
        (11, 28, 52, 71, 88, 94),
        (16, 39, 70, 107, 137, 142),
        (27, 58, 132, 211, 267, 221),
        (50, 118, 266, 575, 790, 318),
        (84, 238, 420, 1022, 2818, 801),
        (92, 420, 715, 1680, 11570, 10330),
    ),
    (  # order 3
        (5, 12, 21, 28, 34, 37),
        (5, 20, 26, 32, 38, 41),
        (6, 20, 33, 39, 45, 48),
        (7, 22, 39, 50, 57, 61),
        (9, 30, 51, 63, 78, 83),
        (13, 37, 64, 80, 121, 120),
        (19, 64, 109, 134, 153, 171),
        (28, 106, 198, 232, 260, 265),
        (46, 128, 296, 408, 606, 329),
        (53, 194, 567, 910, 1543, 1247),
    ),
    (  # order 4
        (18, 33, 46, 58, 66, 71),
        (8, 42, 52, 63, 71, 75),
        (8, 36, 61, 74, 81, 85),
        (8, 39, 59, 95, 98, 101),
        (9, 36, 64, 99, 117, 124),
        (10, 45, 74, 101, 153, 162),
        (16, 70, 121, 164, 202, 223),
        (23, 99, 205, 251, 295, 308),
        (45, 174, 277, 365, 680, 531),
        (87, 310, 556, 698, 2902, 5037),
    ),
    (  # order 5
        (12, 27, 42, 55, 65, 70),
        (8, 38, 49, 62, 70, 75),
        (7, 34, 62, 74, 83, 87),
        (9, 37, 76, 99, 102, 105),
        (10, 40, 76, 110, 126, 131),
        (12, 44, 83, 150, 172, 168),
        (17, 67, 132, 193, 234, 213),
        (25, 96, 229, 322, 360, 283),
        (38, 161, 329, 618, 712, 479),
        (61, 286, 680, 1406, 2361, 2788),
    ),
    (  # order 6
        (4, 12, 20, 26, 31, 33),
        (3, 20, 25, 30, 34, 36),
        (3, 14, 31, 36, 40, 41),
        (3, 13, 25, 46, 48, 50),
        (4, 12, 25, 45, 59, 61),
        (5, 14, 27, 50, 79, 80),
        (6, 18, 32, 61, 90, 106),
        (8, 26, 49, 115, 133, 162),
        (16, 59, 83, 191, 278, 264),
        (35, 118, 237, 455, 835, 1367),
    ),
))


# Fitted on image training slices (4 wallpapers, 1 MB) by bench.priors --fit.
CONTEXT_IMAGE = Config((1, 2, 3, 4, 5, 6), (
    (  # order 1
        (6, 10, 16, 23, 29, 33),
        (7, 11, 18, 25, 33, 38),
        (6, 9, 22, 31, 42, 49),
        (6, 7, 13, 42, 62, 75),
        (6, 6, 9, 42, 110, 140),
        (8, 8, 9, 26, 233, 333),
        (12, 13, 14, 20, 267, 1127),
        (21, 24, 30, 27, 211, 2979),
        (32, 37, 49, 58, 223, 6850),
        (42, 53, 97, 327, 2401, 24300),
    ),
    (  # order 2
        (15, 22, 29, 36, 41, 44),
        (8, 24, 32, 39, 44, 47),
        (7, 11, 39, 44, 50, 53),
        (8, 9, 16, 49, 61, 64),
        (10, 9, 10, 40, 89, 80),
        (13, 12, 10, 23, 84, 91),
        (22, 20, 13, 16, 67, 113),
        (36, 38, 25, 20, 58, 91),
        (47, 56, 54, 53, 100, 103),
        (53, 60, 74, 122, 231, 223),
    ),
    (  # order 3
        (17, 21, 28, 36, 41, 44),
        (16, 20, 30, 39, 45, 48),
        (14, 14, 37, 47, 52, 55),
        (14, 12, 18, 66, 65, 66),
        (16, 11, 14, 50, 81, 79),
        (17, 13, 11, 33, 109, 92),
        (21, 18, 12, 24, 83, 90),
        (26, 27, 18, 26, 51, 71),
        (31, 32, 33, 45, 64, 67),
        (33, 35, 41, 53, 67, 67),
    ),
    (  # order 4
        (42, 31, 32, 36, 38, 39),
        (14, 21, 31, 37, 39, 41),
        (10, 15, 37, 41, 43, 43),
        (9, 11, 25, 50, 47, 46),
        (8, 9, 22, 47, 49, 49),
        (8, 10, 16, 45, 51, 51),
        (10, 16, 18, 44, 53, 53),
        (16, 22, 26, 52, 55, 54),
        (23, 27, 34, 49, 55, 54),
        (26, 29, 36, 47, 52, 53),
    ),
    (  # order 5
        (116, 94, 92, 94, 96, 98),
        (57, 79, 88, 94, 97, 99),
        (48, 66, 88, 95, 100, 102),
        (52, 63, 87, 100, 106, 109),
        (59, 69, 95, 118, 117, 118),
        (72, 87, 110, 133, 129, 128),
        (94, 111, 132, 146, 139, 137),
        (118, 132, 148, 162, 148, 145),
        (132, 139, 148, 158, 152, 149),
        (137, 141, 148, 154, 152, 151),
    ),
    (  # order 6
        (94, 108, 120, 130, 136, 139),
        (81, 111, 124, 134, 140, 143),
        (89, 115, 134, 142, 147, 149),
        (104, 123, 149, 156, 157, 157),
        (127, 146, 161, 168, 167, 167),
        (146, 162, 175, 180, 178, 177),
        (166, 182, 191, 193, 188, 186),
        (180, 191, 201, 204, 197, 193),
        (188, 193, 197, 204, 199, 197),
        (191, 194, 198, 203, 200, 199),
    ),
))
# Fitted on 52 training recordings (1.7 MB); audio gains little from counts (docs/ABLATIONS.md).
CONTEXT_AUDIO = Config((1, 2, 3, 4, 5, 6), (
    (  # order 1
        (2014, 2070, 2155, 2247, 2324, 2368),
        (2002, 2047, 2152, 2265, 2362, 2416),
        (2082, 2075, 2148, 2308, 2447, 2522),
        (2236, 2170, 2180, 2385, 2609, 2715),
        (2536, 2456, 2467, 2509, 2925, 3045),
        (3039, 2939, 2894, 2652, 3607, 3557),
        (3771, 3697, 3763, 3764, 3780, 4103),
        (4768, 4825, 5091, 5276, 5330, 5028),
        (5960, 6366, 6974, 7277, 7468, 6086),
        (6989, 8202, 9971, 10007, 13199, 27689),
    ),
    (  # order 2
        (965, 1239, 1507, 1730, 1887, 1966),
        (882, 1309, 1596, 1824, 1975, 2051),
        (1007, 1273, 1805, 2029, 2158, 2222),
        (1181, 1361, 1820, 2387, 2437, 2480),
        (1357, 1451, 1898, 2494, 2763, 2818),
        (1518, 1508, 1949, 2612, 3179, 3267),
        (1798, 1729, 2223, 2936, 3670, 3898),
        (2291, 2340, 3018, 3855, 4486, 4687),
        (2932, 3295, 4432, 5415, 5801, 5734),
        (3401, 4116, 6949, 7929, 7838, 6769),
    ),
    (  # order 3
        (1437, 1817, 2166, 2449, 2644, 2743),
        (1674, 1929, 2287, 2565, 2755, 2851),
        (2090, 2238, 2556, 2809, 2980, 3067),
        (2571, 2654, 2897, 3188, 3324, 3400),
        (3124, 3196, 3397, 3611, 3781, 3857),
        (3746, 3805, 4001, 4199, 4439, 4467),
        (4439, 4533, 4759, 4946, 5142, 5211),
        (5169, 5352, 5745, 5972, 6059, 6041),
        (5844, 6209, 7038, 7348, 7197, 6906),
        (6272, 6889, 9276, 8950, 8235, 7548),
    ),
    (  # order 4
        (39, 37, 40, 44, 47, 49),
        (22, 32, 39, 45, 49, 51),
        (15, 24, 40, 48, 53, 56),
        (14, 20, 39, 54, 61, 65),
        (15, 19, 42, 65, 75, 80),
        (16, 18, 49, 82, 98, 105),
        (22, 25, 75, 126, 142, 148),
        (32, 41, 134, 225, 221, 216),
        (44, 66, 273, 420, 346, 308),
        (58, 100, 1153, 894, 494, 390),
    ),
    (  # order 5
        (14841, 14992, 15131, 15239, 15310, 15343),
        (14890, 15049, 15190, 15297, 15367, 15400),
        (15067, 15166, 15311, 15416, 15486, 15519),
        (15287, 15332, 15492, 15605, 15674, 15708),
        (15631, 15622, 15776, 15887, 15946, 15974),
        (16072, 16062, 16210, 16287, 16315, 16335),
        (16581, 16607, 16750, 16791, 16776, 16756),
        (17138, 17237, 17439, 17430, 17306, 17224),
        (17655, 17896, 18438, 18216, 17855, 17663),
        (18019, 18522, 20335, 19182, 18307, 17961),
    ),
    (  # order 6
        (19, 24, 28, 33, 36, 38),
        (20, 24, 30, 34, 38, 39),
        (23, 28, 32, 38, 41, 43),
        (24, 29, 37, 44, 48, 50),
        (28, 33, 44, 53, 58, 60),
        (34, 36, 54, 66, 73, 76),
        (38, 39, 69, 89, 97, 100),
        (42, 46, 102, 133, 136, 135),
        (53, 61, 209, 230, 198, 181),
        (66, 90, 884, 459, 272, 222),
    ),
))
CONTEXT_BY_MODALITY = {TEXT: CONTEXT, IMAGE: CONTEXT_IMAGE, AUDIO: CONTEXT_AUDIO, BINARY: CONTEXT}


def config(way: str, modality: int) -> Config:
    """The configuration of container method "context" (per modality) or "context1"."""
    return CONTEXT1 if way == "context1" else CONTEXT_BY_MODALITY[modality]


def cell(v: int, edges: tuple[int, ...]) -> int:
    i = 0
    while i + 1 < len(edges) and v >= edges[i + 1]:
        i += 1
    return i


def context(hist, t: int, order: int) -> int:
    v = 0
    for i in range(1, order + 1):
        v = (v << 8) | int(hist[t - i])
    return v


class SegmentCounts:
    """One segment's counts: tables[k][context] = {byte: count}."""

    def __init__(self, config: Config = CONTEXT):
        self.config = config
        self.tables: list[dict[int, dict[int, int]]] = [{} for _ in config.orders]

    def predict(self, hist, t: int, freq: np.ndarray) -> None:
        """Blend position t's frequencies with the counts of its contexts, in place."""
        f = freq.astype(np.int64)
        for order, betas, table in zip(self.config.orders, self.config.beta, self.tables):
            seen = table.get(context(hist, t, order)) if t >= order else None
            total = sum(seen.values()) if seen else 0
            if not total:
                continue
            beta = betas[cell(total, TOTAL_EDGES)][cell(sum(c > 0 for c in seen.values()), DISTINCT_EDGES)]
            r = (1 << 32) // (total + beta)
            q = (beta * f * r) >> 32
            for x, c in seen.items():
                q[x] = ((c << 16) + beta * int(f[x])) * r >> 32
            q = np.maximum(q, 1)
            q[int(np.argmax(q))] += ONE - int(q.sum())
            f = q
        freq[:] = f

    def update(self, hist, t: int) -> None:
        sym = int(hist[t])
        for order, table in zip(self.config.orders, self.tables):
            if t < order:
                continue
            seen = table.setdefault(context(hist, t, order), {})
            seen[sym] = seen.get(sym, 0) + 1
            if seen[sym] >= LIMIT:
                for x in seen:
                    seen[x] >>= 1


def apply(symbols: np.ndarray, freqs: np.ndarray, config: Config = CONTEXT, native: bool = True,
          in_place: bool = False) -> np.ndarray:
    """The blended frequencies [T, 256] of a whole segment (compression); in_place rewrites `freqs`
    (int32, C order). native=False runs this reference (tests compare the two)."""
    orders, beta = config.arrays()
    return apply_stage(symbols, freqs, in_place, library() if native else None, "tzip_counts_scan",
                       (len(orders), orders.ctypes.data, beta.ctypes.data), lambda n: SegmentCounts(config),
                       "the context-count model")


class CountsBatch(StateBatch):
    """The counts of a batch of segments decoded in lock-step (protocol.StateBatch)."""

    KIND = STAGE_KINDS["counts"]

    def __init__(self, use: list[bool], history: np.ndarray, config: Config = CONTEXT):
        orders, beta = config.arrays()
        super().__init__(use, history, library(), "tzip_counts", "the context-count model",
                         lambda lib: lib.tzip_counts_new(len(orders), orders.ctypes.data, beta.ctypes.data),
                         lambda: SegmentCounts(config))
