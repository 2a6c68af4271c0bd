"""Checks shared by the last, mixed stages (tests/test_pixels.py, test_samples.py, test_bits.py): each is
a container method whose decode batch, coder choice and damaged streams behave alike, and each has a
twin without the network (methods 12 and 13) that behaves alike too."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import tzip
from tzip.codec import encoder
from tzip.codec.decoder import decode_segments
from tzip.codec.encoder import encode_segments
from tzip.codec.pipeline import RowScan, stages_of, uses_counts, way_frequencies
from tzip.codec.rangecoder import CoderError, encode_symbols
from tzip.engine import native
from tzip.engine.constants import FREQ_BITS, UNIFORM_FREQ
from tzip.errors import TzipError
from tzip.format import container as C
from tzip.format.layout import Layout
from tzip.stages import counts, match

from .test_match import lock_step, network_like


def batch_equals_scan(engine: str, monkeypatch, module, batch, segs: list[np.ndarray], ways: list[str],
                      layout: Layout) -> None:
    """Decompression's lock-step batch (segments of unequal length, some coded without the stage)
    computes what compression computed over each whole segment."""
    if engine == "python":
        for m in (match, counts, module):
            monkeypatch.setattr(m, "library", lambda: None)
    elif not native.available():
        pytest.skip("no C compiler")
    freqs = [network_like(s, i) for i, s in enumerate(segs)]
    hist = np.zeros((len(segs), max(map(len, segs))), dtype=np.uint8)
    n = len(segs)
    stages = [match.MatchBatch([True] * n, hist),
              counts.CountsBatch([uses_counts(w) for w in ways], hist, counts.config("context", layout.modality)),
              batch([w != "context" for w in ways], hist, layout)]
    got = lock_step(segs, freqs, stages, hist)
    for s, f, g, w in zip(segs, freqs, got, ways):
        assert np.array_equal(g, way_frequencies(w, s, f, layout))


def coder_round_trip(tiny, way: str, segs: list[bytes], layout: Layout, elsewhere: Layout = Layout.text()) -> None:
    """The stage's segments decode; it wins against the tiny network; off its layouts (`elsewhere`)
    it codes as context."""
    segs = [*segs, b""]  # an empty segment rides along
    coded = encode_segments(tiny, segs, layout, (way,))
    assert [w for w, _ in coded[:-1]] == [way] * (len(segs) - 1)
    assert decode_segments(tiny, [c for _, c in coded], [len(s) for s in segs], layout,
                           [w for w, _ in coded]) == segs
    every = encode_segments(tiny, segs[:1], layout, ("neural", "match", "context", way))[0]
    assert every[0] == way and every[1] == coded[0][1]
    other = encode_segments(tiny, [b"abcabcabd" * 30], elsewhere, (way,))[0]
    assert other[0] == "context"


def refused_elsewhere(tiny, way: str, method: int, elsewhere: Layout) -> None:
    """A segment that claims the stage on a layout it does not fit is a clean error."""
    with pytest.raises(CoderError):
        decode_segments(tiny, [b"\0\0\0\0"], [3], elsewhere, [way])
    packed = bytearray(tzip.compress(b"plain text, not a signal " * 20, model=tiny, methods=("context",)))
    at = packed.index(C.FRAME_SEGMENT + bytes([C.CONTEXT]))
    packed[at + 1] = method
    with pytest.raises(TzipError, match="corrupted"):
        tzip.decompress(bytes(packed), model=tiny)


def damaged_fails(packed: bytes, method: int) -> None:
    """A flipped coded byte or a segment decoded the wrong way is caught; so is a cut stream."""
    at = packed.index(C.FRAME_SEGMENT + bytes([method]))
    bad = bytearray(packed)
    bad[at + 1 + C.SEGMENT.size + 10] ^= 0xFF
    with pytest.raises(TzipError, match="corrupted"):
        tzip.decompress(bytes(bad))
    bad = bytearray(packed)
    bad[at + 1] = C.CONTEXT
    with pytest.raises(TzipError, match="corrupted"):
        tzip.decompress(bytes(bad))
    with pytest.raises(TzipError):
        tzip.decompress(packed[:-5])


class NoNetwork:
    """A model that must not be run."""

    def decoder(self, *args):
        raise AssertionError("the network was asked for its rows")


def uniform_twin(tiny, way: str, network_way: str, segs: list[bytes], layout: Layout, elsewhere: Layout,
                 monkeypatch, module) -> None:
    """A way without the network codes `network_way`'s stages over uniform rows, range-coded; it
    decodes without the network, with the C stages and with the Python ones, and in one batch
    beside `network_way`'s segments; off its layouts no way is left to code with."""
    coded = encode_segments(tiny, segs, layout, (way,))
    assert [w for w, _ in coded] == [way] * len(segs)
    x = np.frombuffer(segs[0], dtype=np.uint8)
    uniform = np.full((len(x), 256), UNIFORM_FREQ, dtype=np.int32)
    assert coded[0][1] == encode_symbols(x, way_frequencies(network_way, x, uniform, layout))
    assert decode_segments(NoNetwork(), [coded[0][1]], [len(x)], layout, [way]) == segs[:1]
    mixed = [coded[0], *encode_segments(tiny, segs[1:], layout, (network_way,))]
    assert decode_segments(tiny, [c for _, c in mixed], list(map(len, segs)), layout, [w for w, _ in mixed]) == segs
    with pytest.raises(ValueError, match="fits"):
        encode_segments(tiny, [b"text"], elsewhere, (way,))
    for m in (match, counts, module):  # the Python stages rewrite the rows they are given in place
        monkeypatch.setattr(m, "library", lambda: None)
    assert decode_segments(NoNetwork(), [coded[0][1]], [len(x)], layout, [way]) == segs[:1]


def chosen_under_a_misled_network(misled, data: bytes, way: str, method: int) -> None:
    """Under a network worse than none the encoder picks the way without it, and the stream is
    smaller than one that must use the network."""
    packed = tzip.compress(data, model=misled)
    assert method in {f.method for _, frames in C.streams(packed) for f in frames if f.kind == C.FRAME_SEGMENT}
    assert tzip.decompress(packed, model=misled) == data
    assert len(packed) < len(tzip.compress(data, model=misled, methods=tuple(m for m in tzip.api.METHODS if m != way)))


class Oracle:
    """A stand-in network that gives every true byte half of the mass: far ahead of a uniform
    distribution at any probe (compression only: it reads the bytes it predicts)."""

    def __init__(self, cfg):
        self.cfg = cfg

    def segment_frequencies(self, symbols: np.ndarray, layout: Layout, rows: tuple[int, int] | None = None,
                            hints: np.ndarray | None = None) -> np.ndarray:
        t0, n = rows if rows is not None else (0, len(symbols))
        f = np.full((n, 256), UNIFORM_FREQ // 2, dtype=np.int32)
        f[np.arange(n), symbols[t0 : t0 + n]] += 1 << (FREQ_BITS - 1)
        return f


def twin_rows_under_a_leading_network(tiny, monkeypatch, network_way: str, twin: str, symbols: np.ndarray,
                                      layout: Layout) -> int:
    """How many rows the way without the network (`twin`) codes beside `network_way` when the
    network leads from the first byte; the network's way must be the one kept."""
    rows: Counter = Counter()

    class Counting(RowScan):
        def __init__(self, stages: tuple[str, ...], history: np.ndarray, layout: Layout):
            super().__init__(stages, history, layout)
            self.stages = stages

        def scan(self, t0: int, freqs: np.ndarray) -> np.ndarray:
            rows[self.stages] += len(freqs)
            return super().scan(t0, freqs)

    monkeypatch.setattr(encoder, "RowScan", Counting)
    way, _ = encoder.encode_segment(Oracle(tiny.cfg), symbols, layout, (network_way, twin))
    assert way == network_way
    assert rows[stages_of(network_way)[-1:]] == len(symbols)  # the network's way: a RowScan a stage
    return rows[stages_of(twin)]  # the twin's: one RowScan of all its stages
