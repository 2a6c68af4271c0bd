"""The x86 call/jump filter (codec/x86.py, native/x86.c): exact on any bytes, found on x86
executables only, and carried by the container's header flag."""

from __future__ import annotations

import glob
import lzma
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import tzip
from tzip.codec import x86
from tzip.errors import TzipError
from tzip.format import container as C
from tzip.format.layout import Layout

from .conftest import DATA

NUMPY_CORE = glob.glob(os.path.join(os.path.dirname(np.__file__), "*core", "_multiarray_umath*.so"))[0]


def dense_opcodes(n: int, seed: int) -> bytes:
    """Bytes full of E8/E9 opcodes with operands in and out of range, overlapping each other."""
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 256, n, dtype=np.uint8)
    b[rng.random(n) < 0.3] = 0xE8
    b[rng.random(n) < 0.1] = 0xE9
    b[rng.random(n) < 0.3] = 0xFF
    b[rng.random(n) < 0.2] = 0x00
    return b.tobytes()


@pytest.mark.parametrize("n", [0, 1, 4, 5, 6, 9, 257, 20_000])
def test_the_filter_is_exact_and_the_c_code_is_the_reference(n):
    for seed in range(5):
        data = dense_opcodes(n, seed)
        for base in (0, 12_345, (1 << 32) - 3, 5 << 32):
            filtered = x86.apply(data, base)
            assert filtered == x86.apply(data, base, native=False)
            assert x86.apply(filtered, base, decode=True) == data
            assert x86.apply(filtered, base, decode=True, native=False) == data


def test_real_code_repeats_after_the_filter():
    code = Path(NUMPY_CORE).read_bytes()[2 << 20 : (2 << 20) + 200_000]  # the text section
    filtered = x86.apply(code, 2 << 20)
    assert filtered != code
    assert len(lzma.compress(filtered, preset=6)) < 0.97 * len(lzma.compress(code, preset=6))


def test_only_x86_executables_are_filtered():
    elf = Path(NUMPY_CORE).read_bytes()[:4096]
    assert x86.is_x86(elf)
    arm = bytearray(elf)
    arm[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    assert not x86.is_x86(bytes(arm))
    pe = bytearray(256)
    pe[:2], pe[60:64], pe[128:132], pe[132:134] = b"MZ", (128).to_bytes(4, "little"), b"PE\0\0", b"\x64\x86"
    assert x86.is_x86(bytes(pe))
    assert not x86.is_x86((DATA / "alice_head.txt").read_bytes()) and not x86.is_x86(b"") and not x86.is_x86(b"MZ")


def test_an_executable_round_trips_with_the_filter(tiny):
    data = Path(NUMPY_CORE).read_bytes()[:60_000]
    whole = tzip.compress(data, model=tiny, segment_size=8192)
    header = C.Header.unpack(whole[: C.HEADER_SIZE])
    assert header.x86 and header.layout.modality == Layout.binary().modality
    assert tzip.decompress(whole, model=tiny) == data
    assert tzip.decompress(whole, model=tiny, workers=2) == data
    comp = tzip.TzipCompressor(model=tiny, segment_size=8192)  # fed in odd pieces: the same stream
    assert b"".join([*(comp.compress(data[i : i + 7777]) for i in range(0, len(data), 7777)), comp.flush()]) == whole
    for methods in (("stored", "zstd", "lzma"), tuple(m for m in tzip.api.METHODS if m != "lzma")):
        packed = tzip.compress(data, model=tiny, segment_size=8192, methods=methods)
        assert tzip.decompress(packed, model=tiny) == data
    other = tzip.compress((DATA / "alice_head.txt").read_bytes()[:5000], model=tiny, modality="binary")
    assert not C.Header.unpack(other[: C.HEADER_SIZE]).x86


def test_the_flag_on_another_modality_is_refused(tiny):
    packed = bytearray(tzip.compress(b"plain text " * 50, model=tiny, modality="text"))
    packed[5] |= C.FLAG_X86
    packed[C.HEADER.size : C.HEADER_SIZE] = struct.pack("<I", zlib.crc32(bytes(packed[: C.HEADER.size])))
    with pytest.raises(TzipError, match="invalid header"):
        tzip.decompress(bytes(packed), model=tiny)
