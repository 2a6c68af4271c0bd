"""The match model: repeats further back than the Transformer's reach, as LZ77 and PAQ see them.

The model attends to 64 bytes plus a compressed memory, so it cannot copy a phrase it saw 10 kB
earlier; zstd can, and beats it on text. The match model finds the last earlier occurrence of
the current 4-byte context within the segment and predicts the byte that followed it. How far
to trust that prediction is learnt while coding: a table of hit rates indexed by the match's
length so far and by how likely the network already thought the predicted byte was (an
adaptive probability map, as in PAQ's SSE stage). The network's frequencies are then rescaled
so the predicted byte gets that probability and the others keep their proportions.

Everything is integer arithmetic on the engine's frequencies (total 2^16) and the bytes of the
segment decoded so far, so encoder and decoder agree on every machine (docs/DESIGN.md §2). Segments
coded this way have their own method ("match") in the container; the encoder keeps the plain
neural coding where it would be smaller.

This file is the reference implementation and the fallback; tzip/native/match.c computes
the same integers fast, and tests/test_match.py pins the two together.
"""

from __future__ import annotations

import numpy as np

from tzip.engine.constants import FREQ_BITS
from tzip.engine.library import library
from tzip.stages.protocol import STAGE_KINDS, segment_arrays

MIN_LEN = 4  # context bytes that must agree for a match (measured best of 2-6 on the bench text)
HASH_BITS = 16  # last-occurrence table entries per segment: 2^16
RATE = 4  # hit-rate update: q += (target - q) >> RATE
LEN_CELLS, PROB_CELLS = 24, 16
ONE = 1 << FREQ_BITS
Q_MIN, Q_MAX = 256, ONE - 256  # keeps every other symbol's frequency >= 1 after rescaling

# State of one segment, a flat int32 array shared with match.c: match pointer, match length
# (0 = none), the byte predicted at this position (-1 = none), its hit-rate cell, the hit-rate
# table, then the hash table of last occurrences (position after the context, 0 = empty).
S_PTR, S_LEN, S_PRED, S_CELL, S_Q = 0, 1, 2, 3, 4
S_TABLE = S_Q + LEN_CELLS * PROB_CELLS
STATE_SIZE = S_TABLE + (1 << HASH_BITS)


def len_cell(n: int) -> int:
    return n if n < 16 else min(16 + (n - 16) // 16, LEN_CELLS - 1)


def new_states(n: int) -> np.ndarray:
    """Fresh states [n, STATE_SIZE]: no match; each hit rate starts at its cell's network probability."""
    s = np.zeros((n, STATE_SIZE), dtype=np.int32)
    s[:, S_PRED] = -1
    start = np.array([3 << p >> 1 for p in range(PROB_CELLS)], dtype=np.int32)
    s[:, S_Q:S_TABLE] = np.tile(start, LEN_CELLS)
    return s


def context_hash(hist, t: int) -> int:
    c = (int(hist[t - 3]) << 24) | (int(hist[t - 2]) << 16) | (int(hist[t - 1]) << 8) | int(hist[t])
    return ((c * 2654435761) & 0xFFFFFFFF) >> (32 - HASH_BITS)


def predict(s: np.ndarray, hist, freq: np.ndarray) -> None:
    """Rescale one position's frequencies in place by the match's prediction, if there is one."""
    if s[S_LEN] == 0:
        s[S_PRED] = -1
        return
    pred = int(hist[s[S_PTR]])
    fb = int(freq[pred])
    cell = len_cell(int(s[S_LEN])) * PROB_CELLS + fb.bit_length() - 1
    q = min(Q_MAX, max(Q_MIN, int(s[S_Q + cell])))
    s[S_PRED], s[S_CELL] = pred, cell
    scale = (ONE - q) * ((1 << 32) // (ONE - fb))  # a reciprocal, not a division per byte value
    scaled = np.maximum(1, (freq.astype(np.int64) * scale) >> 32)
    scaled[pred] = 0
    scaled[pred] = ONE - scaled.sum()
    freq[:] = scaled


def update(s: np.ndarray, hist, t: int) -> None:
    """Learn from byte t (now in hist), follow or drop the match, and look up the new context."""
    sym = int(hist[t])
    if s[S_PRED] >= 0:
        q = int(s[S_Q + s[S_CELL]])
        s[S_Q + s[S_CELL]] = q + ((ONE - q) >> RATE) if sym == s[S_PRED] else q - (q >> RATE)
    if s[S_LEN] > 0 and int(hist[s[S_PTR]]) == sym:
        s[S_LEN] += 1
        s[S_PTR] += 1
    else:
        s[S_LEN] = 0
    if t + 1 >= MIN_LEN:
        h = S_TABLE + context_hash(hist, t)
        cand = int(s[h])
        if s[S_LEN] == 0 and cand and all(hist[cand - 1 - k] == hist[t - k] for k in range(MIN_LEN)):
            s[S_PTR], s[S_LEN] = cand, 1
        s[h] = t + 1


def apply(symbols: np.ndarray, freqs: np.ndarray, in_place: bool = False) -> np.ndarray:
    """The match model's frequencies [T, 256] for a whole segment, given the network's (compression)."""
    data, out = segment_arrays(symbols, freqs, in_place)
    lib = library()
    if lib is not None:
        if lib.tzip_match_scan(data.ctypes.data, len(data), out.ctypes.data) != 0:
            raise MemoryError("the match model could not allocate its state")
        return out
    s = new_states(1)[0]
    for t in range(len(data)):
        predict(s, data, out[t])
        update(s, data, t)
    return out


class MatchBatch:
    """The match model for a batch of segments decoded in lock-step (decompression).

    `adjust` rescales, in place, the step's frequencies of the segments flagged in `use` that are
    still `active`; `update` then learns from the bytes decoded at position t, which the caller has
    written into `history[:, t]`, for the same segments.
    """

    KIND = STAGE_KINDS["match"]
    what = "the match model"

    def __init__(self, use: list[bool], history: np.ndarray, states: np.ndarray | None = None):
        self.use = np.array(use, dtype=np.uint8)
        self.history = history  # [B, max_len] uint8, C-contiguous, filled by the caller
        self.states = new_states(len(use)) if states is None else states
        self.lib = library()
        self.mask = np.zeros_like(self.use)
        self.rows = np.zeros((len(use), 256), dtype=np.int32)  # the step's frequencies, rewritten here
        # these arrays never move: their addresses once, not per byte (ndarray.ctypes costs microseconds)
        self.pointers = self.states.ctypes.data, len(use), history.ctypes.data, history.shape[1]
        self.mask_pointer, self.rows_pointer = self.mask.ctypes.data, self.rows.ctypes.data

    def fork(self) -> MatchBatch:
        """A copy whose states learn apart from this batch's from here on, over the same history."""
        return MatchBatch(list(self.use), self.history, self.states.copy())

    def adjust(self, freqs: np.ndarray, active: np.ndarray, t: int) -> np.ndarray:
        mask = np.bitwise_and(self.use, active, out=self.mask)
        if self.lib is not None:
            np.copyto(self.rows, freqs)
            self.lib.tzip_match_predict(*self.pointers, self.mask_pointer, self.rows_pointer)
            return self.rows
        out = np.ascontiguousarray(freqs, dtype=np.int32)
        for i in np.flatnonzero(mask):
            predict(self.states[i], self.history[i], out[i])
        return out

    def update(self, t: int) -> None:
        if self.lib is not None:
            self.lib.tzip_match_update(*self.pointers, t, self.mask_pointer)
            return
        for i in np.flatnonzero(self.mask):
            update(self.states[i], self.history[i], t)
