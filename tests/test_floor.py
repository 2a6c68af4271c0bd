"""The floor (codec/floor.py): a block of segments falls back to LZMA2 where that is smaller."""

from __future__ import annotations

import glob
import lzma
import os
from pathlib import Path

import numpy as np
import pytest

import tzip
import tzip.api as api
from tzip.codec import floor
from tzip.errors import TzipError
from tzip.format import container as C

from .conftest import DATA

ALICE = (DATA / "alice_head.txt").read_bytes()
XZ = 9 | lzma.PRESET_EXTREME
WITHOUT_CLASSICAL = tuple(m for m in api.METHODS if m not in ("classical", "sparse"))  # no binary contexts


def segments_of(packed: bytes) -> list[C.Frame]:
    [(_, frames)] = C.streams(packed)
    return [f for f in frames if f.kind == C.FRAME_SEGMENT]


@pytest.mark.parametrize("n", [0, 1, 4096, 70_000])
@pytest.mark.parametrize("filter_id", sorted(floor.FILTERS))
def test_bodies_round_trip_and_damage_is_an_error(n, filter_id):
    data = os.urandom(n // 2) + b"tzip" * (n // 8) + bytes(n - n // 2 - 4 * (n // 8))
    body = floor.encode(data, filter_id)
    assert body[0] == filter_id and floor.decode(body, n) == data
    assert floor.dict_size(n) >= n and floor.dict_size(n) & (floor.dict_size(n) - 1) == 0
    for bad in (body[:1], body[: len(body) // 2], body[:-1], body + b"\0", bytes([7]) + body[1:], b""):
        with pytest.raises(TzipError, match="corrupted"):
            floor.decode(bad, n)
    with pytest.raises(TzipError, match="corrupted"):
        floor.decode(body, n + 1)


def test_random_bytes_cost_no_more_than_xz(tiny):
    data = np.random.default_rng(3).integers(0, 256, 150_000, dtype=np.uint8).tobytes()
    packed = tzip.compress(data, model=tiny, methods=("neural", "stored", "zstd", "lzma"))
    assert [f.method for f in segments_of(packed)] == [C.LZMA]  # one frame costs less than three stored
    assert len(packed) <= 1.005 * len(lzma.compress(data, preset=XZ))
    assert tzip.decompress(packed, model=tiny) == data


def test_machine_code_takes_the_x86_filter(tiny):
    """x86-64 machine code (numpy's core extension): the BCJ filter makes call targets repeat, so
    it beats plain xz where the floor wins (without the bit mixer's binary contexts, methods 10 and
    11, which code machine code smaller still)."""
    [library] = glob.glob(os.path.join(os.path.dirname(np.__file__), "*core", "_multiarray_umath*.so"))
    data = Path(library).read_bytes()[2 << 20 : (2 << 20) + 64 * 1024]
    packed = tzip.compress(data, model=tiny, methods=WITHOUT_CLASSICAL)
    [frame] = segments_of(packed)
    assert frame.method == C.LZMA and frame.body[0] == 1 and frame.raw_len == len(data)
    assert len(packed) < len(lzma.compress(data, preset=XZ))
    assert tzip.decompress(packed, model=tiny) == data
    default = tzip.compress(data, model=tiny)
    assert len(default) <= len(packed) and tzip.decompress(default, model=tiny) == data
    off = tzip.compress(data, model=tiny, methods=tuple(m for m in api.METHODS if m != "lzma"))
    assert C.LZMA not in [f.method for f in segments_of(off)]  # the floor is a method like the others


def test_an_lzma_block_restarts_the_chain(tiny, monkeypatch):
    """A chained block that LZMA2 codes better is replaced whole; its segments advanced the
    encoder's chain, which the decoder never sees, so the next block starts a fresh chain."""
    monkeypatch.setattr(floor, "BLOCK", 4096)
    monkeypatch.setattr(api, "CHAINED_BATCH_BYTES", 4096)
    data = bytes(range(256)) * 16 + ALICE[:4096]
    ways = WITHOUT_CLASSICAL  # the untrained model would lose its chain's trial
    packed = tzip.compress(data, model=tiny, segment_size=1024, modality="text", methods=ways)
    assert C.Header.unpack(packed[: C.HEADER_SIZE]).chained
    assert [f.method for f in segments_of(packed)] == [C.LZMA] + [C.BITS_NET] * 4
    assert tzip.decompress(packed, model=tiny) == data
    alone = tzip.compress(ALICE[:4096], model=tiny, segment_size=1024, modality="text", methods=ways)
    tail = -1 - C.END.size
    assert packed[:tail].endswith(alone[C.HEADER_SIZE : tail])  # the text block codes as a stream of its own


def test_blocks_stay_within_a_frame(tiny, monkeypatch):
    """An lzma frame holds at most MAX_SEGMENT bytes, however the batches fall."""
    monkeypatch.setattr(C, "MAX_SEGMENT", 8192)
    monkeypatch.setattr(floor, "BLOCK", 1 << 20)
    monkeypatch.setattr(api, "ENCODE_BATCH_BYTES", 3000)
    data = np.random.default_rng(4).integers(0, 256, 3000, dtype=np.uint8).tobytes() * 10  # repeats across segments
    packed = tzip.compress(data, model=tiny, segment_size=2048, modality="binary", chain=False)
    frames = segments_of(packed)
    assert {f.method for f in frames} == {C.LZMA} and max(f.raw_len for f in frames) <= 8192
    assert sum(f.raw_len for f in frames) == len(data) and tzip.decompress(packed, model=tiny) == data
    # a chained batch (4 MiB) longer than a frame can hold keeps its segments' own frames
    packed = tzip.compress(data, model=tiny, segment_size=2048, modality="binary", chain=True)
    assert C.LZMA not in {f.method for f in segments_of(packed)} and tzip.decompress(packed, model=tiny) == data


def test_damaged_lzma_frames_fail_cleanly(tiny):
    data = np.random.default_rng(5).integers(0, 256, 1500, dtype=np.uint8).tobytes() * 4
    packed = tzip.compress(data, model=tiny, segment_size=1024, modality="binary")
    [frame] = segments_of(packed)
    assert frame.method == C.LZMA
    start = packed.index(C.FRAME_SEGMENT + bytes([C.LZMA])) + 1 + C.SEGMENT.size
    for pos in range(start, start + len(frame.body), max(1, len(frame.body) // 40)):
        bad = bytearray(packed)
        bad[pos] ^= 0x10
        with pytest.raises(TzipError, match="corrupted"):
            tzip.decompress(bytes(bad), model=tiny)

