"""Hints: the stages' own predictions as the network's inputs (docs/DESIGN.md §8).

The classical stages know the segment being coded; the pretrained network knows data in general.
So the network sees, at each position, what a stage predicts there: a byte and a confidence bucket
(N_HINTS = 2 small integers, ABSENT = 256 for none), embedded and added to its input as the
feature bytes are. Text and binary take the match model's next byte and match length, images the
pixel model's centre and spread, 16-bit audio the sample model's predicted byte and error scale.

A hint comes from the stage run on its own, its predictor only and never its mixing with the
network, so it is a function of the bytes before it: compression computes a whole segment's
hints before the network's parallel pass (`hints_for`), decompression steps them beside the
network (`HintsBatch`), and both get the same integers. tzip/native/hints.c computes them fast;
the stages' Python references compute the same here where the library is missing.
"""

from __future__ import annotations

import ctypes

import numpy as np

from tzip.engine.library import header, library
from tzip.format.detect import pcm16_channels
from tzip.format.layout import ABSENT, AUDIO, IMAGE, N_HINTS, Layout
from tzip.stages import match, pixels, samples
from tzip.stages.mixing import octave_bucket

HINT_KINDS = {name.removeprefix("TZIP_HINT_").lower(): kind  # "pixels" -> tzip.h's TZIP_HINT_PIXELS
              for name, kind in header().enums["tzip_hint_kind"].items() if name != "TZIP_HINT_KIND_COUNT"}


def source(layout: Layout) -> tuple[str, int, int]:
    """The stage a layout's hints come from, with its row bytes and channels."""
    if layout.modality == IMAGE and pixels.applies(layout):
        return "pixels", layout.offsets[1], layout.period
    if layout.modality == AUDIO and samples.applies(layout):
        return "samples", 0, pcm16_channels(layout)
    return "match", 0, 1


class MatchHints:
    """The match model's hint: the byte that followed the match and the match length's bucket."""

    def __init__(self, layout: Layout, length: int):
        self.state = match.new_states(1)[0]

    def hint(self, hist, t: int) -> tuple[int, int]:
        s = self.state
        s[match.S_PRED] = -1  # the hit rates are the mixing's business, not the hint's
        n = int(s[match.S_LEN])
        if n == 0:
            return ABSENT, ABSENT
        return int(hist[s[match.S_PTR]]), n if n < 8 else octave_bucket(n, 2, -2)

    def learn(self, hist, t: int) -> None:
        match.update(self.state, hist, t)


def reference_state(layout: Layout, length: int):
    """The Python state whose hint(hist, t) and learn(hist, t) give `layout`'s hints."""
    kind = source(layout)[0]
    if kind == "pixels":
        return pixels.SegmentPixels(layout, length)
    if kind == "samples":
        return samples.SegmentSamples(layout, length)
    return MatchHints(layout, length)


def model_hints(model, data: np.ndarray | bytes, layout: Layout) -> np.ndarray | None:
    """A segment's hints for `model`: None where it has no hint slots, else hints_for's (computed
    once by a caller that passes a segment in pieces)."""
    return hints_for(data, layout) if model.cfg.hint_slots else None


def hints_for(data: np.ndarray | bytes, layout: Layout, native: bool = True) -> np.ndarray:
    """The hints [len(data), N_HINTS] int16 of one segment whose stage starts cold at data[0].
    native=False runs the Python references (the tests compare the two)."""
    sym = np.ascontiguousarray(np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray)
                               else data, dtype=np.uint8)
    out = np.empty((len(sym), N_HINTS), dtype=np.int16)
    lib = library() if native else None
    kind, row, channels = source(layout)
    if lib is not None:
        status = lib.tzip_hints_scan(HINT_KINDS[kind], row, channels, sym.ctypes.data, len(sym), out.ctypes.data)
        if status == -2:
            raise MemoryError("the hints could not allocate their state")
        if status:
            raise ValueError("the hints' stage does not fit this layout")
        return out
    state = reference_state(layout, len(sym))
    for t in range(len(sym)):
        out[t] = state.hint(sym, t)
        state.learn(sym, t)
    return out


class HintsBatch:
    """The hints of a batch of segments decoded in lock-step: `predict(t)` -> [B, N_HINTS] int16
    from the bytes before t in `history` [B, length] (ABSENT where a segment is not `active`), then
    `update(t)` once the bytes at t are in."""

    def __init__(self, history: np.ndarray, layout: Layout):
        self.history, self.layout = history, layout
        b, length = history.shape
        self.rows = np.full((b, N_HINTS), ABSENT, dtype=np.int16)
        self.active = np.ones(b, dtype=np.uint8)
        self.lib = library()
        if self.lib is None:
            self.states = [reference_state(layout, length) for _ in range(b)]
            return
        kind, row, channels = source(layout)
        made = [self.lib.tzip_hints_new(HINT_KINDS[kind], row, channels, length) for _ in range(b)]
        self.handles = (ctypes.c_void_p * b)(*made)
        if not all(made):
            self.close()
            raise MemoryError("the hints could not allocate their state")
        self.args = (ctypes.addressof(self.handles), b, history.ctypes.data, length)

    def set_active(self, active: np.ndarray) -> None:
        np.copyto(self.active, active.astype(np.uint8))

    def predict(self, t: int) -> np.ndarray:
        self.rows.fill(ABSENT)
        if self.lib is not None:
            self.lib.tzip_hints_predict(*self.args, t, self.active.ctypes.data, self.rows.ctypes.data)
            return self.rows
        for i in np.flatnonzero(self.active):
            self.rows[i] = self.states[i].hint(self.history[i], t)
        return self.rows

    def update(self, t: int) -> None:
        if self.lib is not None:
            self.lib.tzip_hints_update(*self.args, t, self.active.ctypes.data)
            return
        for i in np.flatnonzero(self.active):
            self.states[i].learn(self.history[i], t)

    def close(self) -> None:
        if self.lib is not None and getattr(self, "handles", None) is not None:
            for h in self.handles:
                if h:
                    self.lib.tzip_hints_free(h)
            self.handles = None

    def __del__(self):
        self.close()
