"""The engine compiled from C (native.c): the PyTorch engine's integers, many times faster.

Two entry points: `NativeDecoder` (the incremental step, decompression) and `parallel` (the
teacher-forced pass over one segment, compression). The library also holds the match model's
and context-count models' loops (tzip_match_*, tzip_counts_*: tzip/match.py, tzip/counts.py).

A decode step of a small model is a few hundred tiny tensor operations; in PyTorch each costs
microseconds of dispatch, so one step takes about a millisecond whatever its batch. The same
step in C is one call. It is compiled on first use with the system's C compiler (the one Triton
needs too), tuned for this CPU (TZIP_NATIVE_MARCH, default "native"; empty for portable code),
cached under $TZIP_CACHE_DIR (default ~/.cache/tzip), and loaded with ctypes. Where no compiler
works, or TZIP_NATIVE=0, `usable()` is False and callers run the PyTorch engine: the
frequencies are the same integers either way (tests/test_native.py).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from .context import N_FEATURES, PHASES, Layout
from .engine import FREQ_BITS, MASKED, NORM_RECIP_BITS, RES_LIMIT, U_MAX, IntModel
from .export import EXP_BITS, PROB_BITS
from .model import NORM_SCALE

SOURCE = Path(__file__).with_name("native.c")
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False
_error = ""


def cache_dir() -> Path:
    return Path(os.environ.get("TZIP_CACHE_DIR") or Path.home() / ".cache" / "tzip")


def _compile(out: Path) -> None:
    """Build the shared library at `out` (atomically), preferring code tuned for this CPU."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise OSError("no C compiler found (set CC)")
    out.parent.mkdir(parents=True, exist_ok=True)
    error = "failed"
    march = os.environ.get("TZIP_NATIVE_MARCH", "native")
    for tuning in ([f"-march={march}"] if march else [], []):
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
        cmd = [cc, "-O3", *tuning, "-std=c99", "-shared", "-fPIC", "-pthread", "-o", tmp, str(SOURCE), "-lm"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode == 0:
                os.replace(tmp, out)
                return
            error = (done.stderr.strip().splitlines() or ["failed"])[-1]
        except OSError as e:
            error = str(e)
        os.unlink(tmp)
    raise OSError(f"cannot build {SOURCE.name} with {cc}: {error}")


def library() -> ctypes.CDLL | None:
    """The compiled step, building it once per source version and machine; None if unavailable."""
    global _lib, _tried, _error
    with _lock:
        if _tried:
            return _lib
        _tried = True
        if os.environ.get("TZIP_NATIVE", "1") == "0":
            _error = "disabled by TZIP_NATIVE=0"
            return None
        build = f"{platform.machine()} {sys.platform} {os.environ.get('TZIP_NATIVE_MARCH', 'native')}"
        key = hashlib.sha256(SOURCE.read_bytes() + build.encode()).hexdigest()[:16]
        path = cache_dir() / f"tzip_native_{key}.so"
        try:
            if not path.exists():
                _compile(path)
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            _error = str(e)
            return None
        lib.tzip_step.restype = ctypes.c_int
        lib.tzip_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int,
                                  ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                  ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                  ctypes.c_void_p]
        lib.tzip_parallel.restype = ctypes.c_int
        lib.tzip_parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                      ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p,
                                      ctypes.c_int32]
        lib.tzip_match_scan.restype = ctypes.c_int
        lib.tzip_match_scan.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
        lib.tzip_match_predict.restype = None
        lib.tzip_match_predict.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                                           ctypes.c_void_p, ctypes.c_void_p]
        lib.tzip_match_update.restype = None
        lib.tzip_match_update.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_void_p]
        lib.tzip_match_state_size.restype = ctypes.c_int64
        lib.tzip_counts_new.restype = ctypes.c_void_p
        lib.tzip_counts_new.argtypes = [ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p]
        lib.tzip_counts_free.restype = None
        lib.tzip_counts_free.argtypes = [ctypes.c_void_p]
        lib.tzip_counts_scan.restype = ctypes.c_int
        lib.tzip_counts_scan.argtypes = [ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                         ctypes.c_int64, ctypes.c_void_p]
        batch_step = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                      ctypes.c_void_p]
        lib.tzip_counts_predict.restype = None
        lib.tzip_counts_predict.argtypes = [*batch_step, ctypes.c_void_p]
        lib.tzip_counts_update.restype = ctypes.c_int
        lib.tzip_counts_update.argtypes = batch_step
        lib.tzip_pixels_new.restype = ctypes.c_void_p
        lib.tzip_pixels_new.argtypes = [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 3
        lib.tzip_pixels_free.restype = None
        lib.tzip_pixels_free.argtypes = [ctypes.c_void_p]
        lib.tzip_pixels_scan.restype = ctypes.c_int
        lib.tzip_pixels_scan.argtypes = [ctypes.c_int64] * 2 + [ctypes.c_void_p] * 4 + [ctypes.c_int64, ctypes.c_void_p]
        lib.tzip_pixels_predict.restype = None
        lib.tzip_pixels_predict.argtypes = [*batch_step, ctypes.c_void_p]
        lib.tzip_pixels_update.restype = None
        lib.tzip_pixels_update.argtypes = batch_step
        lib.tzip_samples_new.restype = ctypes.c_void_p
        lib.tzip_samples_new.argtypes = [ctypes.c_int64] * 2 + [ctypes.c_void_p] * 3
        lib.tzip_samples_free.restype = None
        lib.tzip_samples_free.argtypes = [ctypes.c_void_p]
        lib.tzip_samples_scan.restype = ctypes.c_int
        lib.tzip_samples_scan.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 4 + [ctypes.c_int64, ctypes.c_void_p]
        lib.tzip_samples_predict.restype = None
        lib.tzip_samples_predict.argtypes = [*batch_step, ctypes.c_void_p]
        lib.tzip_samples_update.restype = None
        lib.tzip_samples_update.argtypes = batch_step
        lib.tzip_bits_new.restype = ctypes.c_void_p
        lib.tzip_bits_new.argtypes = [ctypes.c_void_p] * 2
        lib.tzip_bits_free.restype = None
        lib.tzip_bits_free.argtypes = [ctypes.c_void_p]
        lib.tzip_bits_scan.restype = ctypes.c_int
        lib.tzip_bits_scan.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64, ctypes.c_void_p]
        lib.tzip_bits_predict.restype = None
        lib.tzip_bits_predict.argtypes = [*batch_step, ctypes.c_void_p]
        lib.tzip_bits_update.restype = None
        lib.tzip_bits_update.argtypes = batch_step
        lib.tzip_stages_predict.restype = None
        lib.tzip_stages_predict.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 3 + [ctypes.c_int64, ctypes.c_void_p,
                                                                                        ctypes.c_int64, ctypes.c_int64,
                                                                                        ctypes.c_void_p]
        lib.tzip_stages_update.restype = ctypes.c_int64
        lib.tzip_stages_update.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 3 + [ctypes.c_int64, ctypes.c_void_p,
                                                                                       ctypes.c_int64, ctypes.c_int64]
        lib.tzip_stages_scan.restype = ctypes.c_int64
        lib.tzip_stages_scan.argtypes = [ctypes.c_int64, *[ctypes.c_void_p] * 4, ctypes.c_int64, ctypes.c_int64,
                                         ctypes.c_void_p]
        lib.tzip_turn_predict.restype = ctypes.c_int
        lib.tzip_turn_predict.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
        lib.tzip_turn_learn.restype = ctypes.c_int64
        lib.tzip_turn_learn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        _lib = lib
        return lib


def available() -> bool:
    return library() is not None


def unavailable_reason() -> str:
    library()
    return _error


def supports(model: IntModel) -> bool:
    """The shapes native.c covers: width a power of two (its exact RMSNorm shortcut), layers within
    its stack scratch (MAX_D, MAX_OUT), one attention-score multiplier per layer."""
    cfg = model.cfg
    d, widest = cfg.d_model, max(cfg.d_ff, cfg.d_model + 2 * cfg.kv_dim)
    return (d & (d - 1) == 0 and d <= 1024 and widest <= 2048
            and all(L.score.mult.numel() == 1 and L.score.shift.numel() == 1 for L in model.layers))


class NativeWeights:
    """A model's tensors as contiguous numpy arrays in the order native.c reads them."""

    def __init__(self, model: IntModel):
        cfg = model.cfg
        norm_shift = NORM_RECIP_BITS - int(math.log2(16 * NORM_SCALE))  # as engine.rmsnorm
        use_memory = int(cfg.use_memory)
        self.cfg = np.array([cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.d_ff, cfg.window, cfg.block,
                             cfg.mem_slots, model.ring, use_memory, N_FEATURES, PHASES, U_MAX, PROB_BITS, EXP_BITS,
                             FREQ_BITS, norm_shift, RES_LIMIT, MASKED], dtype=np.int32)
        self.n_keys = cfg.window + (model.ring if cfg.use_memory else 0)

        def arr(x: torch.Tensor, dtype, size: int | None = None) -> np.ndarray:
            a = x.contiguous().numpy().astype(dtype, copy=False).ravel()
            if size is not None:
                a = np.broadcast_to(a, (size,)) if a.size == 1 else a
                if a.size != size:
                    raise ValueError("unexpected requantisation shape")
            return np.ascontiguousarray(a)

        def packed(w: np.ndarray) -> np.ndarray:
            """[out, in] -> native.c's VNNI tiles as bytes: int32 128 * (sum of each padded output's
            weights), then the int8 weights [out/32, in/4, 32, 4], zero-padded."""
            out, n_in = w.shape
            padded = np.zeros((-(-out // 32) * 32, -(-n_in // 4) * 4), dtype=np.int8)
            padded[:out, :n_in] = w
            bias = (128 * padded.astype(np.int64).sum(1)).astype("<i4")
            tiles = padded.reshape(-1, 32, padded.shape[1] // 4, 4).transpose(0, 2, 1, 3)
            return np.concatenate([bias.view(np.uint8), np.ascontiguousarray(tiles).view(np.uint8).ravel()])

        def linear(lin) -> list[np.ndarray]:
            out = lin.weight.shape[1]
            w = arr(lin.weight.T, np.int16).reshape(out, -1)
            return [w.ravel(), arr(lin.requant.mult, np.int32, out), arr(lin.requant.shift, np.int32, out),
                    packed(w).ravel()]

        self.arrays = [arr(model.features, np.int32), arr(model.phase, np.int32), arr(model.exp_full, np.int32),
                       arr(model.layers[0].alibi, np.int32), *linear(model.head)]
        for L in model.layers:  # supports() has checked one score multiplier per layer
            self.arrays += [*linear(L.qkv), *linear(L.proj), *linear(L.up), *linear(L.down),
                            arr(L.score.mult, np.int32), arr(L.score.shift, np.int32),
                            arr(L.attn_out.mult, np.int32, cfg.d_model), arr(L.attn_out.shift, np.int32, cfg.d_model)]
        self.pointers = (ctypes.c_void_p * len(self.arrays))(*[a.ctypes.data for a in self.arrays])


def weights(model: IntModel) -> NativeWeights:
    if getattr(model, "_native", None) is None:
        model._native = NativeWeights(model)
    return model._native


def usable(model: IntModel) -> bool:
    """The C code can run this model here (built, CPU model, supported shape)."""
    return model.device.type == "cpu" and available() and supports(model)


def _require(model: IntModel) -> ctypes.CDLL:
    lib = library()
    if lib is None or not supports(model):
        raise RuntimeError(f"the C engine is unavailable: {_error or 'unsupported model shape'}")
    return lib


KEY_BLOCK = 16  # native.c's KEY_BLOCK: a decoder's key ring is padded to whole blocks
PASS_THREADS = min(2, os.cpu_count() or 1)  # threads of one segment's pass; the output never depends on it


def parallel(model: IntModel, symbols: np.ndarray, layout: Layout, threads: int | None = None) -> np.ndarray:
    """Frequencies [T, 256] int32 of one segment, teacher-forced (what compression codes with).

    threads: 2 runs the segment's second half on a second thread (PASS_THREADS by default: a
    file of one segment would otherwise leave the second core idle; with a worker per core
    busy, the threads only share the cores)."""
    lib = _require(model)
    data = np.ascontiguousarray(symbols, dtype=np.uint8)
    out = np.empty((len(data), 256), dtype=np.int32)
    offsets = np.array(layout.offsets, dtype=np.int32)
    w = weights(model)
    status = lib.tzip_parallel(w.cfg.ctypes.data, ctypes.addressof(w.pointers), data.ctypes.data, len(data),
                               offsets.ctypes.data, layout.modality, layout.period, out.ctypes.data,
                               PASS_THREADS if threads is None else threads)
    if status == -2:
        raise MemoryError("the C pass could not allocate its buffers")
    if status != 0:
        raise RuntimeError("the C pass rejected this model configuration")
    return out


class NativeDecoder:
    """Drop-in for engine.Decoder (step/push) running each step as one C call."""

    def __init__(self, model: IntModel, layouts: list[Layout], max_len: int):
        self.lib, self.t = _require(model), 0
        self.w = weights(model)
        cfg, b = model.cfg, len(layouts)
        self.b = b
        hd = cfg.d_model // cfg.n_heads
        self.history = np.zeros((b, max_len + 1), dtype=np.uint8)
        self.offsets = np.array([lay.offsets for lay in layouts], dtype=np.int32)
        self.modality = np.array([lay.modality for lay in layouts], dtype=np.int32)
        self.period = np.array([lay.period for lay in layouts], dtype=np.int32)
        key_slots = -(-self.w.n_keys // KEY_BLOCK) * KEY_BLOCK  # keys in native.c's blocks of 16 (put_key)
        self.keys = np.zeros((cfg.n_layers, b, cfg.n_kv_heads, key_slots, hd), dtype=np.int16)
        self.vals = np.zeros((cfg.n_layers, b, cfg.n_kv_heads, self.w.n_keys, hd), dtype=np.int16)
        self.block_sum = np.zeros((cfg.n_layers, b, cfg.d_model), dtype=np.int32)
        self.freq = np.zeros((b, 256), dtype=np.int32)
        self._args = [self.w.cfg.ctypes.data, ctypes.addressof(self.w.pointers)]
        self._state = [self.history.ctypes.data, self.history.shape[1], self.offsets.ctypes.data,
                       self.modality.ctypes.data, self.period.ctypes.data, self.keys.ctypes.data,
                       self.vals.ctypes.data, self.block_sum.ctypes.data, self.freq.ctypes.data]

    def step_numpy(self) -> np.ndarray:
        """Frequencies [B, 256] int32 for position t (a buffer reused by the next step)."""
        self.check_room()
        self.check_step(self.lib.tzip_step(*self._args, self.t, self.b, *self._state))
        return self.freq

    def check_room(self) -> None:
        if self.t >= self.history.shape[1]:
            raise IndexError("decoder ran past max_len")

    @staticmethod
    def check_step(status: int) -> None:
        if status != 0:
            raise RuntimeError("the C step rejected this model configuration")

    def step(self) -> torch.Tensor:
        return torch.from_numpy(self.step_numpy().copy())

    def push(self, symbols) -> None:
        """Record the bytes decoded at position t and advance to t + 1."""
        self.history[:, self.t] = np.asarray(symbols, dtype=np.int64)
        self.t += 1


class _TurnArgs(ctypes.Structure):
    """native.c's decode_turn."""

    _fields_ = [(name, ctypes.c_int64 if name in ("batch", "stride", "n_stages", "stage_stride") else ctypes.c_void_p)
                for name in ("cfg", "params", "batch", "history", "stride", "offsets", "modality", "period", "keys",
                             "vals", "block_sum", "freq", "n_stages", "kinds", "states", "masks", "stage_history",
                             "stage_stride", "probs")]


class DecodeTurns:
    """The decode loop's work at each position in two C calls (tzip_turn_predict/_learn): the
    step, the stages' predict and the float32 frequencies; then the decoded bytes into both
    histories and the stages' update. A Python call and its argument conversions cost about a
    microsecond each, a tenth of a byte's decoding at batch 1.

    stage_args: the stages' (n, kinds, states, masks) pointers (match.NativeStages.args), or None;
    symbols: the int64 [B] array the caller writes each position's decoded bytes into."""

    def __init__(self, dec: NativeDecoder, stage_args: tuple | None, stage_history: np.ndarray,
                 symbols: np.ndarray):
        self.dec, self.lib = dec, dec.lib
        self.symbols_pointer = symbols.ctypes.data  # once: ndarray.ctypes costs microseconds a call
        self.probs = np.zeros((dec.b, 256), dtype=np.float32)
        stages = stage_args[:4] if stage_args else (0, None, None, None)
        self.args = _TurnArgs(*dec._args, dec.b, *dec._state, *stages, stage_history.ctypes.data,
                              stage_history.shape[1], self.probs.ctypes.data)
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
