"""The floor: a block of segments coded by LZMA2 where that is smaller than tzip's own frames.

The models lose on some data (machine code, database pages, bytecode) and segments of 64 KiB
forget each other, while xz's window spans the file. So the compressor codes up to BLOCK bytes
of segments as usual, then LZMA2 over the same bytes as one block, and keeps the smaller
(api.TzipCompressor._close_block): a stream is never much larger than xz -9e on files up to a
block, and a block that tzip codes better keeps its frames. Binary blocks also try the x86 BCJ
filter (call and jump targets made absolute, so repeated calls to one function repeat bytes).

An "lzma" segment frame's body is one filter byte (FILTERS) then raw LZMA2 data (no .xz
container: the frame already has lengths and a CRC); the dictionary is the smallest power of
two that holds the block, so memory follows the block, not xz -9's 64 MiB. LZMA2's encoder
frees its match finder (about 10 bytes a byte of the block) when a block is done, and the
pages go back to the system then (`release_heap`): glibc would keep them for the process's
lifetime, and the compressor's process would hold them while its workers reach their peaks.
"""

from __future__ import annotations

import ctypes
import lzma

from tzip.errors import TzipError
from tzip.format.layout import AUDIO, IMAGE

BLOCK = 8 << 20  # raw bytes compared with LZMA2 at a time: its dictionary (about 9.5 bytes of memory a byte)
# Pixels and samples repeat little at long range, and their stages and workers already hold the
# most memory, so their blocks (and LZMA2's dictionary) are 1 MiB: a smaller, quicker pass.
PIXEL_SAMPLE_BLOCK = 1 << 20
PRESET = 9 | lzma.PRESET_EXTREME  # xz -9e
FILTERS = {0: (), 1: ({"id": lzma.FILTER_X86},)}  # the body's first byte: no filter, x86 BCJ
MIN_DICT = 1 << 12  # LZMA2's smallest dictionary

try:  # glibc's: returns the free pages of every heap to the system; elsewhere frees go back unaided
    _malloc_trim = ctypes.CDLL(None).malloc_trim
    _malloc_trim.argtypes, _malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
except (AttributeError, OSError, TypeError):
    _malloc_trim = None


def release_heap() -> None:
    """Hand the process's freed heap pages back to the system (a no-op off glibc). A large free
    raises glibc's mmap threshold, after which buffers like LZMA2's come from the heap and stay
    resident once freed."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def dict_size(n: int) -> int:
    """The smallest power of two of at least n bytes (and LZMA2's minimum): the whole block fits."""
    return max(MIN_DICT, 1 << max(0, n - 1).bit_length())


def _chain(filter_id: int, n: int) -> list[dict]:
    return [*FILTERS[filter_id], {"id": lzma.FILTER_LZMA2, "preset": PRESET, "dict_size": dict_size(n)}]


def block_size(modality: int) -> int:
    """Raw bytes of segments the compressor collects before it compares them with LZMA2."""
    return PIXEL_SAMPLE_BLOCK if modality in (IMAGE, AUDIO) else BLOCK


def encode(data: bytes, filter_id: int = 0) -> bytes:
    """The frame body of `data` coded with LZMA2 after filter `filter_id`; the encoder's memory
    is back with the system on return."""
    body = bytes([filter_id]) + lzma.compress(data, lzma.FORMAT_RAW, filters=_chain(filter_id, len(data)))
    release_heap()
    return body


def smallest(data: bytes, binary: bool) -> bytes:
    """The smallest body over the filters worth trying: x86 only on binary data (it cannot help text,
    pixels or samples, and each try costs a pass of LZMA2)."""
    return min((encode(data, f) for f in (FILTERS if binary else (0,))), key=len)


def decode(body: bytes, raw_len: int) -> bytes:
    """The block's bytes; TzipError if the body is not a valid LZMA2 coding of raw_len bytes."""
    if not body or body[0] not in FILTERS:
        raise TzipError("corrupted tzip stream (unknown lzma filter)")
    d = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_chain(body[0], raw_len))
    try:
        out = d.decompress(body[1:], max_length=raw_len)
    except lzma.LZMAError as e:
        raise TzipError(f"corrupted tzip stream (lzma segment: {e})") from None
    if len(out) != raw_len or not d.eof or d.unused_data:
        raise TzipError("corrupted tzip stream (lzma segment has the wrong length)")
    return out
