"""The range coder (constriction), in one place.

Each segment is its own range-coder stream. Frequencies reach constriction as exact integers
(in float32, which holds them exactly): constriction's Categorical(perfect=False) turns them
into its fixed-point model by a deterministic integer-exact procedure, identically on encode
and decode, so no float computed by us ever decides a symbol.
"""

from __future__ import annotations

import constriction
import numpy as np

_FAMILY = constriction.stream.model.Categorical(perfect=False)
ENCODE_ROWS = 4096  # rows handed to constriction at a time (a float32 copy of all would be 64 MB a segment)


class CoderError(ValueError):
    """Coded bytes that no encoder could have produced."""


class SymbolEncoder:
    """One segment's range encoder, fed its rows in pieces: add(symbols [n], frequencies [n, 256])."""

    def __init__(self):
        self._enc = constriction.stream.queue.RangeEncoder()

    def add(self, symbols: np.ndarray, freqs: np.ndarray) -> None:
        for i in range(0, len(symbols), ENCODE_ROWS):
            rows = slice(i, i + ENCODE_ROWS)
            self._enc.encode(symbols[rows].astype(np.int32), _FAMILY, freqs[rows].astype(np.float32))

    def bytes(self) -> bytes:
        return self._enc.get_compressed().astype("<u4").tobytes()


def encode_symbols(symbols: np.ndarray, freqs: np.ndarray | None) -> bytes:
    """One segment's range-coded bytes: symbols [T] under frequencies [T, 256] (total 2^16 a row)."""
    enc = SymbolEncoder()
    if len(symbols):
        enc.add(symbols, freqs)
    return enc.bytes()


class SymbolDecoder:
    """One segment's range decoder: `decode(probs)` gives the next symbol under float32 frequencies [1, 256]."""

    def __init__(self, coded: bytes):
        if len(coded) % 4:
            raise CoderError("coded segment length is not a whole number of coder words")
        self._dec = constriction.stream.queue.RangeDecoder(np.frombuffer(coded, dtype="<u4").astype(np.uint32))

    def decode(self, probs: np.ndarray) -> int:
        try:
            return self._dec.decode(_FAMILY, probs)[0]
        except AssertionError as e:  # constriction's report of data no encoder could produce
            raise CoderError(str(e)) from None
