"""Adaptive stages carried from segment to segment (a chained stream; docs/FORMAT.md).

The match model, the context counts and the bit mixer learn each segment from nothing. On text
that costs: the bench's two long novels code 4.8 % and 3.6 % smaller as one segment than as
256 KiB ones, almost all of it from these stages remembering the first segment, not from the
network (which sees 64 bytes and a compressed memory). In a chained stream (header flag
FLAG_CHAINED) consecutive segments coded with stage-bearing ways of one family (the same way, or
any of the bit mixer's methods 8, 10, 11 and 14) form a chain: each continues the stages' state where
the segments before it left it, over a history that is the chain's bytes so far. The network
still starts every segment afresh, so compression keeps its per-segment pass and bounded memory;
decoding a chain is sequential, one byte at a time.

Binary data chains too: its repeats (a tar's members, a database's pages, a library's symbol
tables) lie farther apart than a segment, and the binary bench set's source tar with its
bytecode codes 24 % smaller chained, at the price of decoding on one core. Such a tar's source
files code smaller with the text contexts (method 8) than with binary data's (10, 11); one chain
lets those segments switch to them while the match model and the counts keep the whole history,
where a stream of their own would lose what sources and bytecode share.

A segment coded otherwise (stored, zstd, lzma, the network alone) ends the chain, and a chain that
holds CHAIN_LIMIT bytes ends before its next segment, which bounds the history and the counts'
tables. Encoder and decoder apply the same rule (`continues`).
"""

from __future__ import annotations

import copy
from concurrent.futures import Executor

import numpy as np

from tzip.codec import classical
from tzip.codec.pipeline import reads_network, stage_batch, stages_of
from tzip.format.layout import BINARY, TEXT, Layout
from tzip.format.methods import CHAINABLE, method
from tzip.stages.protocol import NativeStages, scan_rows

CHAIN_LIMIT = 8 << 20  # a chain holding this many bytes ends before its next segment (its tables: ~20 B a byte)
CHAINED_BY_DEFAULT = (TEXT, BINARY)  # modalities whose streams chain unless asked not to


class Chain:
    """One chain's stages (each a batch of one) and the history they have seen.

    The methods of one family (methods.Method.family) share a chain: each segment runs its own
    method's stages (`begin`), the others wait with their state as they left it. A stage starts
    fresh at the first segment that runs it (a made stage holds no state until it runs), so
    encoder and decoder, which run the same stages at the same segments, see the same state."""

    def __init__(self, way: str, layout: Layout, segment_size: int):
        if way not in CHAINABLE:
            raise ValueError(f"the {way} way does not chain")
        self.way = way  # its first segment's
        self.family, self.layout, self.length = method(way).family, layout, 0
        self.segments = 0  # added so far (compression)
        # calloc'd: pages cost memory only once written
        self.history = np.zeros((1, CHAIN_LIMIT + segment_size), dtype=np.uint8)
        self.parts: dict[str, object] = {}  # every stage the chain has run, by name
        self.begin(way)

    def continues(self, way: str) -> bool:
        """Whether the next segment, coded `way`, carries on this chain (else a new one starts)."""
        return method(way).family == self.family and self.length < CHAIN_LIMIT

    def begin(self, way: str) -> None:
        """The next segment is coded `way`, a method of the chain's family: its stages run, in its order."""
        if method(way).family != self.family:
            raise ValueError(f"a {way} segment does not carry on a chain of the {self.family} family")
        for stage in stages_of(way):
            if stage not in self.parts:
                self.parts[stage] = stage_batch(stage, [True], self.history, self.layout)
        self.running = way
        parts = [self.parts[s] for s in stages_of(way)]
        self.stages = NativeStages.of(parts, self.history)
        # the same stages in two runs, for scan_front and scan_back: each stage reads only its own state,
        # the history, the rows the stage before it wrote and the network's rows, so running them
        # stage-major is exact
        self.front = NativeStages.of(parts[:-1], self.history) if len(parts) > 1 else None
        self.back = NativeStages.of(parts[-1:], self.history)
        self.reads_network = reads_network(way)
        for run in (self.stages, self.front, self.back):
            if run is not None:
                run.set_active(np.ones(1, dtype=bool))

    def fork(self) -> Chain:
        """A copy of the chain whose stages learn apart from here on (compression: a segment coded two
        ways from one state, the smaller kept). It shares the history, which both fill with the same
        bytes at the same places; the copy is only ever used for the segment being decided."""
        twin = copy.copy(self)
        twin.parts = {name: part.fork() for name, part in self.parts.items()}
        twin.begin(self.running)
        return twin

    def add(self, symbols: np.ndarray) -> int:
        """Compression: the next segment's bytes join the history; returns where they start, the
        position `scan` takes its rows from."""
        t0 = self.length
        self.history[0, t0 : t0 + len(symbols)] = symbols
        self.length += len(symbols)
        self.segments += 1
        return t0

    def scan(self, t0: int, freqs: np.ndarray) -> np.ndarray:
        """Rows t0.. of the history's network frequencies (int32 [n, 256], C order) rewritten in
        place by the running way's stages, which learn them."""
        scan_rows(self.stages, t0, freqs)
        return freqs

    def scan_front(self, t0: int, freqs: np.ndarray) -> np.ndarray:
        """`scan` by all the running way's stages but its last: with `scan_back` over the same rows
        after it, what `scan` does. Rows ahead can go through the front stages on one thread while
        the last stage (the costliest: the mixer) works on the rows before on another."""
        if self.front is not None:
            scan_rows(self.front, t0, freqs)
        return freqs

    def scan_back(self, t0: int, freqs: np.ndarray, net: np.ndarray | None = None) -> np.ndarray:
        """`scan` by the running way's last stage, of rows `scan_front` has rewritten; `net`, the
        network's rows as they were before, for a last stage that reads them (reads_network)."""
        if self.reads_network and net is None:
            raise ValueError(f"the {self.running} way's last stage reads the network's rows")
        scan_rows(self.back, t0, freqs, net if self.reads_network else None)
        return freqs

    def code(self, t0: int, n: int, ahead: Executor | None = None, rows_at_once: int = 1 << 12) -> bytes | None:
        """The classical way (no network): rows t0..t0+n-1 of the history coded bit by bit, the
        stages learning them (codec/classical.py); None where the body would not fit its frame.
        With `ahead`, an executor of one worker (its jobs run in order), the stages before the bit
        mixer run there, up to classical.ROWS_AHEAD pieces of rows_at_once positions ahead of it
        (the same bytes)."""
        if self.reads_network:
            raise ValueError(f"the {self.running} way reads the network's rows; the classical coder feeds none")
        if ahead is not None:
            return classical.encode_pipelined(self.stages, self.history, t0, n, ahead, rows_at_once)
        return classical.encode(self.stages, self.history, t0, n)

    def decode(self, body: bytes, n: int) -> bytes:
        """The classical way: the chain's next n bytes decoded from `body` onto its history."""
        t0 = self.length
        classical.decode(self.stages, self.history, t0, n, body)
        self.length += n
        return self.history[0, t0 : t0 + n].tobytes()
