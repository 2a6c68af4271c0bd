"""The engine in C (tzip/native/engine.c): the PyTorch engine's integers, many times faster.

Two entry points: `NativeDecoder` (the incremental step, decompression) and `parallel` (the
teacher-forced pass over one segment, compression); `DecodeTurns` runs a decode position's
step and stages together.

A decode step of a small model is a few hundred tiny tensor operations; in PyTorch each costs
microseconds of dispatch, so one step takes about a millisecond whatever its batch. The same
step in C is one call. Where the library is unavailable (tzip.engine.library), `usable()` is
False and callers run the PyTorch engine: the frequencies are the same integers either way
(tests/test_native.py).
"""

from __future__ import annotations

import ctypes
import math
import os
from typing import TYPE_CHECKING

import numpy as np

from tzip.engine import constants as K
from tzip.engine.config import exp_full
from tzip.engine.library import available, header, library, unavailable_reason
from tzip.format.layout import N_FEATURES, N_HINTS, PHASES, Layout

if TYPE_CHECKING:
    from tzip.engine.base import Model

CFG = header().enums["tzip_cfg"]  # tzip.h's names for the cfg array's entries
KEY_BLOCK = header().defines["TZIP_KEY_BLOCK"]  # a decoder's key ring is padded to whole blocks
_TurnArgs = header().structs["tzip_decode_turn"]


def supports(model: Model) -> bool:
    """The shapes engine.c covers: width a power of two (its exact RMSNorm shortcut), layers within
    its stack scratch (MAX_D, MAX_OUT), one attention-score multiplier per layer."""
    cfg, t = model.cfg, model.file.tensors
    d, widest = cfg.d_model, max(cfg.d_ff, cfg.d_model + 2 * cfg.kv_dim)
    return (d & (d - 1) == 0 and d <= 1024 and widest <= 2048
            and all(t[f"layers.{i}.score.{k}"].size == 1 for i in range(cfg.n_layers) for k in ("mult", "shift")))


class NativeWeights:
    """A model file's tensors as contiguous numpy arrays in the order engine.c reads them."""

    def __init__(self, model: Model):
        cfg, t = model.cfg, model.file.tensors
        norm_shift = K.NORM_RECIP_BITS - int(math.log2(16 * K.NORM_SCALE))  # as reference.rmsnorm
        values = dict(d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads, n_kv_heads=cfg.n_kv_heads,
                      d_ff=cfg.d_ff, window=cfg.window, block=cfg.block, mem_slots=cfg.mem_slots, ring=model.ring,
                      use_memory=int(cfg.use_memory), n_features=N_FEATURES, phases=PHASES, u_max=K.U_MAX,
                      prob_bits=K.PROB_BITS, exp_bits=K.EXP_BITS, freq_bits=K.FREQ_BITS, norm_shift=norm_shift,
                      res_limit=K.RES_LIMIT, masked=K.MASKED, n_hints=cfg.hint_slots)
        self.cfg = np.zeros(CFG["TZIP_CFG_COUNT"], dtype=np.int32)
        for name, value in values.items():
            self.cfg[CFG[f"TZIP_CFG_{name.upper()}"]] = value
        if len(values) != CFG["TZIP_CFG_COUNT"]:
            raise ValueError("tzip.h's tzip_cfg and the engine's configuration differ")
        self.n_keys = cfg.window + (model.ring if cfg.use_memory else 0)

        def arr(name: str, dtype, size: int | None = None) -> np.ndarray:
            a = np.asarray(t[name]).astype(dtype).ravel()
            if size is not None:
                a = np.broadcast_to(a, (size,)) if a.size == 1 else a
                if a.size != size:
                    raise ValueError("unexpected requantisation shape")
            return np.ascontiguousarray(a)

        def packed(w: np.ndarray) -> np.ndarray:
            """[out, in] -> engine.c's VNNI tiles as bytes: int32 128 * (sum of each padded output's
            weights), then the int8 weights [out/32, in/4, 32, 4], zero-padded."""
            out, n_in = w.shape
            padded = np.zeros((-(-out // 32) * 32, -(-n_in // 4) * 4), dtype=np.int8)
            padded[:out, :n_in] = w
            bias = (128 * padded.astype(np.int64).sum(1)).astype("<i4")
            tiles = padded.reshape(-1, 32, padded.shape[1] // 4, 4).transpose(0, 2, 1, 3)
            return np.concatenate([bias.view(np.uint8), np.ascontiguousarray(tiles).view(np.uint8).ravel()])

        def linear(name: str) -> list[np.ndarray]:
            w = np.asarray(t[f"{name}.w"])
            if w.dtype != np.int8:
                raise ValueError("weights must be int8")
            out = w.shape[0]
            return [np.ascontiguousarray(w, dtype=np.int16).ravel(), arr(f"{name}.mult", np.int32, out),
                    arr(f"{name}.shift", np.int32, out), packed(w).ravel()]

        self.arrays = [arr("embed.features", np.int32), arr("embed.phase", np.int32),
                       np.ascontiguousarray(exp_full(t["exp_table"])), arr("layers.0.alibi", np.int32),
                       *linear("head"),
                       arr("embed.hints", np.int32) if cfg.hint_slots else np.zeros(1, dtype=np.int32)]
        for i in range(cfg.n_layers):  # supports() has checked one score multiplier per layer
            L = f"layers.{i}"
            self.arrays += [*linear(f"{L}.qkv"), *linear(f"{L}.proj"), *linear(f"{L}.up"), *linear(f"{L}.down"),
                            arr(f"{L}.score.mult", np.int32), arr(f"{L}.score.shift", np.int32),
                            arr(f"{L}.attn_out.mult", np.int32, cfg.d_model),
                            arr(f"{L}.attn_out.shift", np.int32, cfg.d_model)]
        self.pointers = (ctypes.c_void_p * len(self.arrays))(*[a.ctypes.data for a in self.arrays])


def weights(model: Model) -> NativeWeights:
    if getattr(model, "_native", None) is None:
        model._native = NativeWeights(model)
    return model._native


def usable(model: Model) -> bool:
    """The C code can run this model here (built, CPU model, supported shape)."""
    return model.on_cpu and available() and supports(model)


def _require(model: Model) -> ctypes.CDLL:
    lib = library()
    if lib is None or not supports(model):
        raise RuntimeError(f"the C engine is unavailable: {unavailable_reason() or 'unsupported model shape'}")
    return lib


PASS_THREADS = min(2, os.cpu_count() or 1)  # threads of one segment's pass; the output never depends on it


def parallel(model: Model, symbols: np.ndarray, layout: Layout, threads: int | None = None,
             rows: tuple[int, int] | None = None, hints: np.ndarray | None = None) -> np.ndarray:
    """Frequencies [T, 256] int32 of one segment, teacher-forced (what compression codes with);
    with rows = (row0, n), only positions row0..row0+n-1, [n, 256], the same integers. hints: the
    whole segment's [T, N_HINTS] (stages.hints.hints_for), for a model with hint slots.

    threads: 2 runs the rows' second half on a second thread (PASS_THREADS by default: a file
    of one segment would otherwise leave the second core idle; with a worker per core busy, the
    threads only share the cores)."""
    lib = _require(model)
    data = np.ascontiguousarray(symbols, dtype=np.uint8)
    row0, n = rows if rows is not None else (0, len(data))
    if not (0 <= row0 and 0 <= n and row0 + n <= len(data)):
        raise ValueError("rows outside the segment")
    out = np.empty((n, 256), dtype=np.int32)
    offsets = np.array(layout.offsets, dtype=np.int32)
    w = weights(model)
    hints = segment_hints(model, data, layout, hints)
    status = lib.tzip_parallel_rows(w.cfg.ctypes.data, ctypes.addressof(w.pointers), data.ctypes.data, len(data),
                                    offsets.ctypes.data, layout.modality, layout.period,
                                    None if hints is None else hints.ctypes.data, row0, n, out.ctypes.data,
                                    PASS_THREADS if threads is None else threads)
    if status == -2:
        raise MemoryError("the C pass could not allocate its buffers")
    if status != 0:
        raise RuntimeError("the C pass rejected this model configuration")
    return out


def segment_hints(model: Model, data: np.ndarray, layout: Layout, hints: np.ndarray | None) -> np.ndarray | None:
    """The hints a pass over `data` embeds: None for a model without hint slots, else `hints`
    (checked) or, where not given, the segment's own (stages.hints.hints_for)."""
    if not model.cfg.hint_slots:
        return None
    if hints is None:
        from tzip.stages.hints import hints_for

        return hints_for(data, layout)
    hints = np.ascontiguousarray(hints, dtype=np.int16)
    if hints.shape != (len(data), N_HINTS):
        raise ValueError("one row of hints per byte of the segment")
    return hints


class NativeDecoder:
    """Drop-in for reference.Decoder (step/push) running each step as one C call."""

    def __init__(self, model: Model, layouts: list[Layout], max_len: int):
        self.lib, self.t = _require(model), 0
        self.w = weights(model)
        cfg, b = model.cfg, len(layouts)
        self.b = b
        hd = cfg.d_model // cfg.n_heads
        self.history = np.zeros((b, max_len + 1), dtype=np.uint8)
        self.offsets = np.array([lay.offsets for lay in layouts], dtype=np.int32)
        self.modality = np.array([lay.modality for lay in layouts], dtype=np.int32)
        self.period = np.array([lay.period for lay in layouts], dtype=np.int32)
        key_slots = -(-self.w.n_keys // KEY_BLOCK) * KEY_BLOCK  # keys in engine.c's blocks of 16 (put_key)
        self.keys = np.zeros((cfg.n_layers, b, cfg.n_kv_heads, key_slots, hd), dtype=np.int16)
        self.vals = np.zeros((cfg.n_layers, b, cfg.n_kv_heads, self.w.n_keys, hd), dtype=np.int16)
        self.block_sum = np.zeros((cfg.n_layers, b, cfg.d_model), dtype=np.int32)
        self.freq = np.zeros((b, 256), dtype=np.int32)
        # a model with hint slots steps its segments' hints beside it (one layout per batch)
        self.hints = None
        if cfg.hint_slots:
            from tzip.stages.hints import HintsBatch

            self.hints = HintsBatch(self.history, layouts[0])
        if self.hints is not None and any(lay != layouts[0] for lay in layouts):
            raise ValueError("a decode batch of a model with hints has one layout")
        self._args = [self.w.cfg.ctypes.data, ctypes.addressof(self.w.pointers)]
        self._state = [self.history.ctypes.data, self.history.shape[1], self.offsets.ctypes.data,
                       self.modality.ctypes.data, self.period.ctypes.data, self.keys.ctypes.data,
                       self.vals.ctypes.data, self.block_sum.ctypes.data, self.freq.ctypes.data]
        # tzip_step's arguments: the hints' rows (rewritten in place each step) after the period
        hint_rows = self.hints.rows.ctypes.data if self.hints is not None else None
        self._step_state = [*self._state[:5], hint_rows, *self._state[5:]]

    def set_active(self, active: np.ndarray) -> None:
        """The segments still decoding (the others' hints are left alone)."""
        if self.hints is not None:
            self.hints.set_active(active)

    def step_numpy(self) -> np.ndarray:
        """Frequencies [B, 256] int32 for position t (a buffer reused by the next step)."""
        self.check_room()
        if self.hints is not None:
            self.hints.predict(self.t)
        self.check_step(self.lib.tzip_step(*self._args, self.t, self.b, *self._step_state))
        return self.freq

    def check_room(self) -> None:
        if self.t >= self.history.shape[1]:
            raise IndexError("decoder ran past max_len")

    @staticmethod
    def check_step(status: int) -> None:
        if status != 0:
            raise RuntimeError("the C step rejected this model configuration")

    def step(self):
        """step_numpy as a torch tensor: the PyTorch Decoder's interface (tests compare the two)."""
        import torch

        return torch.from_numpy(self.step_numpy().copy())

    def push(self, symbols) -> None:
        """Record the bytes decoded at position t and advance to t + 1."""
        self.history[:, self.t] = np.asarray(symbols, dtype=np.int64)
        if self.hints is not None:
            self.hints.update(self.t)
        self.t += 1


class DecodeTurns:
    """The decode loop's work at each position in two C calls (tzip_turn_predict/_learn): the
    step, the stages' predict and the float32 frequencies; then the decoded bytes into both
    histories and the stages' update. A Python call and its argument conversions cost about a
    microsecond each, a tenth of a byte's decoding at batch 1.

    stage_args: the stages' (n, kinds, states, masks) pointers (protocol.NativeStages.args), or None;
    symbols: the int64 [B] array the caller writes each position's decoded bytes into."""

    def __init__(self, dec: NativeDecoder, stage_args: tuple | None, stage_history: np.ndarray,
                 symbols: np.ndarray):
        self.dec, self.lib = dec, dec.lib
        self.symbols_pointer = symbols.ctypes.data  # once: ndarray.ctypes costs microseconds a call
        self.probs = np.zeros((dec.b, 256), dtype=np.float32)
        stages = stage_args[:4] if stage_args else (0, None, None, None)
        hints = dec.hints
        hint_args = (hints.args[0], hints.active.ctypes.data, hints.rows.ctypes.data) if hints else (None, None, None)
        self.args = _TurnArgs(*dec._args, dec.b, *dec._state, *stages, stage_history.ctypes.data,
                              stage_history.shape[1], self.probs.ctypes.data, *hint_args)
        self.pointer = ctypes.addressof(self.args)

    def predict(self, ts: int) -> np.ndarray:
        """Frequencies [B, 256] as float32 at the decoder's position (the stages' ts)."""
        self.dec.check_room()
        self.dec.check_step(self.lib.tzip_turn_predict(self.pointer, self.dec.t, ts))
        return self.probs

    def learn(self, ts: int) -> int:
        """Record the bytes in `symbols` and let the stages learn; non-zero: the stage that failed, plus one."""
        failed = self.lib.tzip_turn_learn(self.pointer, self.dec.t, ts, self.symbols_pointer)
        self.dec.t += 1
        return failed
