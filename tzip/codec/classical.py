"""The classical way's coding (container method 10): a chain's bytes coded a bit at a time.

Without the network nothing needs a byte's whole distribution: the match model and the context
counts turn a uniform distribution into the bit mixer's incoming frequencies, and the mixer's
eight decisions on the byte's path are coded by a binary arithmetic coder (codec/bitcoder.py),
where the range coder needs all 255 nodes of the byte's tree evaluated. One C call codes or
decodes a segment (tzip_classical_encode/_decode), or compression runs the stages before the bit
mixer on a thread ahead of it (encode_pipelined); without the C library the Python stages do.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Executor

import numpy as np

from tzip.codec.bitcoder import BitDecoder, BitEncoder
from tzip.engine.constants import UNIFORM_FREQ
from tzip.format.container import max_coded
from tzip.stages.protocol import NativeStages, StagesInTurn


def _native_args(stages: NativeStages) -> tuple:
    """The chain's stages and history as tzip_classical_* take them (the history the stages were built on)."""
    n, kinds, states, masks, _, history, _ = stages.args
    return n, kinds, states, masks, history


def _check(stages: NativeStages, status: int) -> None:
    """Raise for a tzip_classical_* status below -1: a stage that could not grow, or a bad chain."""
    stages.check(-2 - status)
    raise ValueError("a classical chain ends with the bit mixer")


def _python_run(stages: StagesInTurn, history: np.ndarray, t0: int, n: int, coder) -> None:
    *before, bits = stages.stages
    if bits.lib is not None:
        raise RuntimeError("the classical way's Python path needs the bit mixer in Python")
    active, row = np.ones(1, dtype=bool), history[0]
    for t in range(t0, t0 + n):
        f = np.full((1, 256), UNIFORM_FREQ, dtype=np.int32)
        for stage in before:
            f = stage.adjust(f, active, t)
        bits.states[0].code(row, t, np.array(f[0]), coder)
        for stage in before:
            stage.update(t)


def encode(stages: NativeStages | StagesInTurn, history: np.ndarray, t0: int, n: int) -> bytes | None:
    """Positions t0..t0+n-1 of a chain's history [1, length] coded, the stages learning them; None
    where the body would be longer than its frame allows (the stages have learnt the bytes all the same)."""
    cap = max_coded(n)
    if isinstance(stages, NativeStages):
        out = np.empty(cap, dtype=np.uint8)
        got = stages.lib.tzip_classical_encode(*_native_args(stages), t0, n, out.ctypes.data, cap)
        if got < -1:
            _check(stages, got)
        return None if got < 0 else out[:got].tobytes()
    coder = BitEncoder()
    _python_run(stages, history, t0, n, coder)
    body = coder.bytes()
    return body if len(body) <= cap else None


ROWS_AHEAD = 4  # pieces of rows encode_pipelined lets its thread ahead compute before the coder takes them


def encode_pipelined(stages: NativeStages | StagesInTurn, history: np.ndarray, t0: int, n: int,
                     ahead: Executor, rows_at_once: int) -> bytes | None:
    """What `encode` gives, in two halves that overlap: the rows of the next pieces of rows_at_once
    positions (tzip_classical_rows: every stage but the bit mixer, which learn) on `ahead`, an
    executor of one worker (the pieces' rows must be made in order), while the bit
    mixer codes the positions before here (tzip_classical_code). The match model and the counts
    take about as long as the mixer's eight decisions a byte, so two cores nearly halve the time."""
    if not isinstance(stages, NativeStages):
        return encode(stages, history, t0, n)
    cap, args = max_coded(n), _native_args(stages)
    out = np.empty(cap, dtype=np.uint8)
    coder = np.array([0, 0xFFFFFFFF, 0], dtype=np.int64)

    def rows(at: int, m: int) -> np.ndarray:
        r = np.empty((m, 256), dtype=np.int32)
        got = stages.lib.tzip_classical_rows(*args, at, m, r.ctypes.data)
        if got:
            _check(stages, got)
        return r

    bounds = [(at, min(rows_at_once, t0 + n - at)) for at in range(t0, t0 + n, rows_at_once)]
    # one thread, so in order; at most ROWS_AHEAD pieces of rows wait (1 KB a position)
    jobs = deque(ahead.submit(rows, at, m) for at, m in bounds[:ROWS_AHEAD])
    for k, (at, m) in enumerate(bounds):
        r = jobs.popleft().result()
        if k + ROWS_AHEAD < len(bounds):
            jobs.append(ahead.submit(rows, *bounds[k + ROWS_AHEAD]))
        got = stages.lib.tzip_classical_code(*args, at, m, r.ctypes.data, out.ctypes.data, cap, coder.ctypes.data, 0)
        if got:
            _check(stages, got)
    # the coder's flush, in a call of no rows
    got = stages.lib.tzip_classical_code(*args, t0 + n, 0, None, out.ctypes.data, cap, coder.ctypes.data, 1)
    return None if got < 0 else out[:got].tobytes()


def decode(stages: NativeStages | StagesInTurn, history: np.ndarray, t0: int, n: int, body: bytes) -> None:
    """Positions t0..t0+n-1 of a chain's history [1, length] decoded from `body` (its length checked
    by the container), the stages learning them."""
    if isinstance(stages, NativeStages):
        coded = np.frombuffer(bytes(body) or b"\0", dtype=np.uint8)
        got = stages.lib.tzip_classical_decode(*_native_args(stages), t0, n, coded.ctypes.data, len(body))
        if got:
            _check(stages, got)
        return
    _python_run(stages, history, t0, n, BitDecoder(bytes(body)))
