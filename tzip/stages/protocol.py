"""What every adaptive stage shares: its segment arrays, a whole-segment scan, a decode batch
of per-segment states, and the batch's stages run together in C.

A stage rewrites the network's frequencies position by position from the bytes coded so far.
Compression runs it over a whole segment (`apply_stage`: one C call, tzip_*_scan); decompression
runs a batch of segments in lock-step (`StateBatch`: predict, then update once the byte is
known). With the C library every stage of a batch runs in one call per step each way
(`NativeStages`); without it each stage's Python reference runs in turn (`StagesInTurn`).
"""

from __future__ import annotations

import copy
import ctypes
from collections.abc import Callable

import numpy as np

from tzip.engine.library import header

STAGE_KINDS = {name.removeprefix("TZIP_STAGE_").lower(): kind  # "match" -> tzip.h's TZIP_STAGE_MATCH
               for name, kind in header().enums["tzip_stage_kind"].items() if name != "TZIP_STAGE_KIND_COUNT"}


def segment_arrays(symbols: np.ndarray, freqs: np.ndarray, in_place: bool) -> tuple[np.ndarray, np.ndarray]:
    """A whole segment's bytes and the frequency rows a stage rewrites: `freqs` itself (int32, C
    order) when in_place, else a copy (a 64 KiB segment's rows are 64 MB). Shared with apply_stage."""
    data = np.ascontiguousarray(symbols, dtype=np.uint8)
    out = freqs if in_place else np.array(freqs, dtype=np.int32, order="C")
    if len(data) != len(out) or out.dtype != np.int32 or not out.flags.c_contiguous:
        raise ValueError("one C-ordered int32 row of frequencies per symbol")
    return data, out


def scan_segment(data: np.ndarray, out: np.ndarray, native_scan: Callable | None, state, what: str) -> np.ndarray:
    """A stage over a whole segment: native_scan(data, out) (C; non-zero = out of memory), or,
    without it, the Python state's predict and update at each position in turn."""
    if native_scan is not None:
        if native_scan(data, out) != 0:
            raise MemoryError(f"{what} could not allocate its state")
        return out
    for t in range(len(data)):
        state.predict(data, t, out[t])
        state.update(data, t)
    return out


def apply_stage(symbols: np.ndarray, freqs: np.ndarray, in_place: bool, lib, scan: str, args: tuple,
                new_state: Callable[[int], object], what: str) -> np.ndarray:
    """A stage after the match model over a whole segment (compression): the C library's
    `scan`(*args, data, n, out) where lib is given, else the Python state new_state(n); the
    apply of the counts, pixel, sample and bit-mixer models."""
    data, out = segment_arrays(symbols, freqs, in_place)
    if lib is None:
        return scan_segment(data, out, None, new_state(len(data)), what)
    native_scan = getattr(lib, scan)
    return scan_segment(data, out, lambda d, o: native_scan(*args, d.ctypes.data, len(d), o.ctypes.data), None, what)


class StateBatch:
    """A batch of segments decoded in lock-step, each with its own model state: a handle from
    the C library (PREFIX_new/_free/_predict/_update) or, without the C library, a Python object with
    predict(hist, t, freq) and update(hist, t). The API of MatchBatch; counts, pixels and samples use it."""

    def __init__(self, use: list[bool], history: np.ndarray, lib, prefix: str, what: str,
                 new_handle: Callable, new_state: Callable):
        self.use = np.array(use, dtype=np.uint8)
        self.history = history
        self.lib, self.what, self.prefix = lib, what, prefix
        self._adopt([new_state() if u else None for u in use] if lib is None
                    else [new_handle(lib) if u else None for u in use])

    def _adopt(self, made: list) -> None:
        """Take `made`, one state (Python) or handle (C) per segment, None where unused."""
        self.mask = np.zeros_like(self.use)
        if self.lib is None:
            self.states = made
            return
        self._free, self._predict, self._update = (getattr(self.lib, f"{self.prefix}_{n}")
                                                   for n in ("free", "predict", "update"))
        self.handles = (ctypes.c_void_p * len(made))(*made)
        if any(u and not h for u, h in zip(self.use, made)):
            self.close()
            raise MemoryError(f"{self.what} could not allocate its state")
        self.rows = np.zeros((len(made), 256), dtype=np.int32)  # the step's frequencies, rewritten here
        self.pointers = ctypes.addressof(self.handles), len(made), self.history.ctypes.data, self.history.shape[1]
        self.mask_pointer, self.rows_pointer = self.mask.ctypes.data, self.rows.ctypes.data

    def fork(self) -> StateBatch:
        """A copy whose states learn apart from this batch's from here on, over the same history
        (PREFIX_clone in C): a chain coding a segment two ways from one state (chain.Chain.fork)."""
        if self.lib is None:
            twin = copy.copy(self)
            twin._adopt(copy.deepcopy(self.states))
            return twin
        clone = getattr(self.lib, f"{self.prefix}_clone")  # before the copy, which must never free these handles
        twin = copy.copy(self)
        twin.handles = None
        twin._adopt([clone(h) if h else None for h in self.handles])
        return twin

    def close(self) -> None:
        if self.lib is not None and getattr(self, "handles", None) is not None:
            for h in self.handles:
                if h:
                    self._free(h)
            self.handles = None

    def __del__(self):
        self.close()

    def adjust(self, freqs: np.ndarray, active: np.ndarray, t: int) -> np.ndarray:
        mask = np.bitwise_and(self.use, active, out=self.mask)
        if self.lib is not None:
            np.copyto(self.rows, freqs)
            self._predict(*self.pointers, t, self.mask_pointer, self.rows_pointer)
            return self.rows
        out = np.ascontiguousarray(freqs, dtype=np.int32)
        for i in np.flatnonzero(mask):
            self.states[i].predict(self.history[i], t, out[i])
        return out

    def update(self, t: int) -> None:
        if self.lib is not None:
            if self._update(*self.pointers, t, self.mask_pointer):
                raise MemoryError(f"{self.what} could not grow its state")
            return
        for i in np.flatnonzero(self.mask):
            self.states[i].update(self.history[i], t)


class StagesInTurn:
    """A decode batch's stages called one after another (where one of them runs in Python); the
    API of NativeStages."""

    def __init__(self, stages: list):
        self.stages, self.active = stages, None

    def set_active(self, active: np.ndarray) -> None:
        self.active = active

    def adjust(self, freqs: np.ndarray, t: int, net: np.ndarray | None = None) -> np.ndarray:
        """net: the network's rows where `freqs` come rewritten by stages before these (a bit mixer of
        the net set keeps them, else the rows as they come)."""
        for stage in self.stages:
            if getattr(stage, "reads_network", False):
                stage.keep(freqs if net is None else net, self.active)
        for stage in self.stages:
            freqs = stage.adjust(freqs, self.active, t)
        return freqs

    def update(self, t: int) -> None:
        for stage in self.stages:
            stage.update(t)


class NativeStages:
    """A decode batch's stages run by the C library in one call per step each way (tzip_stages_*): a
    Python call per stage and byte costs microseconds, as much as most stages' own work.

    Each stage's mask (its segments that are still decoding) is set by `set_active` when that
    changes, where `adjust` of a single stage would recompute it every step."""

    def __init__(self, stages: list, history: np.ndarray):
        self.stages, self.lib = stages, stages[0].lib
        n, b = len(stages), history.shape[0]
        self.kinds = np.array([s.KIND for s in stages], dtype=np.int32)
        self.states = (ctypes.c_void_p * n)(*[s.pointers[0] for s in stages])  # each stage's states or handles
        self.masks = (ctypes.c_void_p * n)(*[s.mask_pointer for s in stages])
        self.rows = np.zeros((b, 256), dtype=np.int32)
        self.rows_pointer = self.rows.ctypes.data
        self.args = (n, self.kinds.ctypes.data, ctypes.addressof(self.states), ctypes.addressof(self.masks), b,
                     history.ctypes.data, history.shape[1])

    @classmethod
    def of(cls, stages: list, history: np.ndarray) -> NativeStages | StagesInTurn:
        """The stages as one native chain, or called in turn where there are none or one runs in Python."""
        if not stages or any(s.lib is None for s in stages):
            return StagesInTurn(stages)
        return cls(stages, history)

    def set_active(self, active: np.ndarray) -> None:
        for s in self.stages:
            np.bitwise_and(s.use, active, out=s.mask)

    def adjust(self, freqs: np.ndarray, t: int) -> np.ndarray:
        np.copyto(self.rows, freqs)
        self.lib.tzip_stages_predict(*self.args, t, self.rows_pointer)
        return self.rows

    def update(self, t: int) -> None:
        self.check(self.lib.tzip_stages_update(*self.args, t))

    def scan(self, t0: int, freqs: np.ndarray, net: np.ndarray | None = None) -> None:
        """A batch of one over a whole segment from position t0 of its history (chain.Chain's
        compression): freqs [T, 256] rewritten in place, in one C call (tzip_stages_scan; with `net`,
        the network's rows where freqs come rewritten by other stages, tzip_stages_scan_net)."""
        n, kinds, states, masks, _, history, _ = self.args
        if net is None:
            net = freqs  # tzip_stages_scan: the rows as they come are the network's
        elif net.shape != freqs.shape or net.dtype != np.int32 or not net.flags.c_contiguous:
            raise ValueError("one C-ordered int32 network row per row")
        self.check(self.lib.tzip_stages_scan_net(n, kinds, states, masks, history, t0, len(freqs), freqs.ctypes.data,
                                                 net.ctypes.data))

    def check(self, failed: int) -> None:
        """Raise where a stage update failed (its number plus one), as tzip_stages_update reports it."""
        if failed:
            raise MemoryError(f"{self.stages[failed - 1].what} could not grow its state")


def scan_rows(stages: NativeStages | StagesInTurn, t0: int, freqs: np.ndarray, net: np.ndarray | None = None) -> None:
    """Rows t0, t0 + 1, ... of a batch of one rewritten in place (freqs int32 [n, 256], C order) by
    its stages, which learn each row's byte from their history: one C call where every stage is
    native, else the Python stages position by position. Rows scanned in pieces give exactly what
    one scan gives (the states carry on)."""
    if isinstance(stages, NativeStages):
        stages.scan(t0, freqs, net)
        return
    for t in range(len(freqs)):
        freqs[t] = stages.adjust(freqs[t : t + 1], t0 + t, None if net is None else net[t : t + 1])[0]
        stages.update(t0 + t)
