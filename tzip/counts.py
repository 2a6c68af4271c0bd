"""The context-count model: what this segment has taught about its order-2..4 contexts.

A network of 590k parameters knows the language in general, not this file: which words this
author repeats, which names follow "Mr.". PPM-style counts of the bytes that followed each 2-,
3- and 4-byte context so far in the segment do. They are blended with the network (after the
match model) as a Dirichlet prior: for each order, lowest first, the distribution becomes

    p'(x) = (count(x) + beta * p(x)) / (total + beta)

so a context seen rarely keeps the network's prediction and one seen often follows its counts.
beta (256, 64, 16 for orders 2, 3, 4) was chosen by measurement on text from the training
corpora, not the bench (and checked there: docs/ABLATIONS.md); counts halve when one reaches 255
so the model follows change.

Integer arithmetic throughout (frequencies total 2^16; the division is a 32-bit fixed-point
reciprocal; rounding leftovers go to the most probable byte), so every machine computes the
same frequencies (DESIGN §2). Context statistics are exact (no hash collisions), so native.c's
hash tables (tzip_counts_*) give the integers of this reference; tests/test_match.py pins them.
"""

from __future__ import annotations

import ctypes

import numpy as np

from .engine import FREQ_BITS
from .match import segment_arrays

ORDERS = (2, 3, 4)
PRIOR = (256, 64, 16)  # beta per order: how many counts the network's prediction is worth
LIMIT = 255
ONE = 1 << FREQ_BITS


def context(hist, t: int, order: int) -> int:
    v = 0
    for i in range(1, order + 1):
        v = (v << 8) | int(hist[t - i])
    return v


class SegmentCounts:
    """One segment's counts: tables[k][context] = {byte: count}."""

    def __init__(self):
        self.tables: list[dict[int, dict[int, int]]] = [{} for _ in ORDERS]

    def predict(self, hist, t: int, freq: np.ndarray) -> None:
        """Blend position t's frequencies with the counts of its contexts, in place."""
        f = freq.astype(np.int64)
        for order, beta, table in zip(ORDERS, PRIOR, self.tables):
            seen = table.get(context(hist, t, order)) if t >= order else None
            total = sum(seen.values()) if seen else 0
            if not total:
                continue
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
        for order, table in zip(ORDERS, self.tables):
            if t < order:
                continue
            seen = table.setdefault(context(hist, t, order), {})
            seen[sym] = seen.get(sym, 0) + 1
            if seen[sym] >= LIMIT:
                for x in seen:
                    seen[x] >>= 1


def _library():
    from . import native

    return native.library()


def apply(symbols: np.ndarray, freqs: np.ndarray, native: bool = True, in_place: bool = False) -> np.ndarray:
    """The blended frequencies [T, 256] of a whole segment (compression); in_place rewrites `freqs`
    (int32, C order). native=False runs this reference, whose ORDERS and PRIOR bench.priors varies."""
    data, out = segment_arrays(symbols, freqs, in_place)
    lib = _library() if native else None
    if lib is not None:
        if lib.tzip_counts_scan(data.ctypes.data, len(data), out.ctypes.data) != 0:
            raise MemoryError("the context-count model could not allocate its tables")
        return out
    s = SegmentCounts()
    for t in range(len(data)):
        s.predict(data, t, out[t])
        s.update(data, t)
    return out


class CountsBatch:
    """The counts of a batch of segments decoded in lock-step; the API of match.MatchBatch."""

    def __init__(self, use: list[bool], history: np.ndarray):
        self.use = np.array(use, dtype=np.uint8)
        self.history = history
        self.mask = self.use
        self.lib = _library()
        if self.lib is None:
            self.states = [SegmentCounts() if u else None for u in use]
            return
        made = [self.lib.tzip_counts_new(history.shape[1]) if u else None for u in use]
        self.handles = (ctypes.c_void_p * len(use))(*made)
        if any(u and not h for u, h in zip(use, made)):
            self.close()
            raise MemoryError("the context-count model could not allocate its tables")

    def close(self) -> None:
        if self.lib is not None and getattr(self, "handles", None) is not None:
            for h in self.handles:
                if h:
                    self.lib.tzip_counts_free(h)
            self.handles = None

    def __del__(self):
        self.close()

    def adjust(self, freqs: np.ndarray, active: np.ndarray, t: int) -> np.ndarray:
        self.mask = mask = (self.use & active).astype(np.uint8)
        out = np.ascontiguousarray(freqs, dtype=np.int32)
        if self.lib is not None:
            self.lib.tzip_counts_predict(self.handles, len(mask), self.history.ctypes.data, self.history.shape[1],
                                         t, mask.ctypes.data, out.ctypes.data)
            return out
        for i in np.flatnonzero(mask):
            self.states[i].predict(self.history[i], t, out[i])
        return out

    def update(self, t: int) -> None:
        mask = self.mask
        if self.lib is not None:
            self.lib.tzip_counts_update(self.handles, len(mask), self.history.ctypes.data, self.history.shape[1],
                                        t, mask.ctypes.data)
            return
        for i in np.flatnonzero(mask):
            self.states[i].update(self.history[i], t)
