"""Adaptive stages carried from segment to segment (a chained stream; docs/FORMAT.md).

The match model, the context counts and the bit mixer learn each segment from nothing. On text
that costs: the bench's two long novels code 4.8 % and 3.6 % smaller as one segment than as
256 KiB ones, almost all of it from these stages remembering the first segment, not from the
network (which sees 64 bytes and a compressed memory). In a chained stream (header flag
FLAG_CHAINED) consecutive segments coded with the same stage-bearing way form a chain: each
continues the stages' state where the previous one left it, over a history that is the chain's
bytes so far. The network still starts every segment afresh, so compression keeps its
per-segment pass and bounded memory; decoding a chain is sequential, one byte at a time.

Binary data chains too: its repeats (a tar's members, a database's pages, a library's symbol
tables) lie farther apart than a segment, and the binary bench set's source tar with its
bytecode codes 24 % smaller chained, at the price of decoding on one core.

A segment coded otherwise (stored, zstd, lzma, the network alone) ends the chain, and a chain that
holds CHAIN_LIMIT bytes ends before its next segment, which bounds the history and the counts'
tables. Encoder and decoder apply the same rule (`continues`).
"""

from __future__ import annotations

import numpy as np

from tzip.codec import classical
from tzip.codec.pipeline import RowScan
from tzip.format.layout import BINARY, TEXT, Layout
from tzip.format.methods import CHAINABLE, method

CHAIN_LIMIT = 8 << 20  # a chain holding this many bytes ends before its next segment (its tables: ~20 B a byte)
CHAINED_BY_DEFAULT = (TEXT, BINARY)  # modalities whose streams chain unless asked not to


class Chain:
    """One chain's stages (a batch of one, pipeline.RowScan) and the history they have seen."""

    def __init__(self, way: str, layout: Layout, segment_size: int):
        if way not in CHAINABLE:
            raise ValueError(f"the {way} way does not chain")
        self.way, self.length = way, 0
        # calloc'd: pages cost memory only once written
        self.history = np.zeros((1, CHAIN_LIMIT + segment_size), dtype=np.uint8)
        self.rows = RowScan(method(way).stages, self.history, layout)
        self.stages = self.rows.run  # what decoding continues (decoder.decode_segments)

    def continues(self, way: str) -> bool:
        """Whether the next segment, coded `way`, carries on this chain (else a new one starts)."""
        return way == self.way and self.length < CHAIN_LIMIT

    def add(self, symbols: np.ndarray) -> int:
        """Compression: the next segment's bytes join the history; returns where they start, the
        position `scan` takes its rows from."""
        t0 = self.length
        self.history[0, t0 : t0 + len(symbols)] = symbols
        self.length += len(symbols)
        return t0

    def scan(self, t0: int, freqs: np.ndarray) -> np.ndarray:
        """Rows t0.. of the history's network frequencies (int32 [n, 256], C order) rewritten in
        place by the chain's stages, which learn them."""
        return self.rows.scan(t0, freqs)

    def code(self, t0: int, n: int) -> bytes | None:
        """The classical way (no network): rows t0..t0+n-1 of the history coded bit by bit, the
        stages learning them (codec/classical.py); None where the body would not fit its frame."""
        return classical.encode(self.stages, self.history, t0, n)

    def decode(self, body: bytes, n: int) -> bytes:
        """The classical way: the chain's next n bytes decoded from `body` onto its history."""
        t0 = self.length
        classical.decode(self.stages, self.history, t0, n, body)
        self.length += n
        return self.history[0, t0 : t0 + n].tobytes()
