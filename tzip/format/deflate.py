"""zlib streams inside a file, expanded byte-exactly: the deflated parts of PDFs and other
containers modelled as what they hold.

Deflate hides its content from every model: a PDF's page descriptions and fonts are mostly zlib
streams, which tzip (like xz) can only store. Where zlib's own compressor, run on the inflated
bytes with some level, window and memory level, gives back exactly the stream found, the stream
can be replaced by its inflated bytes and rebuilt on decompression (the idea of precomp). The
intermediate form is the file with each such stream expanded, then a table of the expansions:

    body ‖ table ‖ len(table) (u32 LE) ‖ b"TZDF"
    table: count, then per stream: gap (body bytes since the previous stream's end), inflated
           length, deflated length (varints), level, memLevel, wbits (a byte each), crc32 of the
           deflated bytes (u32 LE)

Raw deflate streams (RFC 1951, no zlib header) are found where a container says one starts: after
a gzip member's header and after a zip local file header of method 8, so .gz files, wheels, jars
and office documents that zlib wrote (Python's gzip, tarfile and zipfile, Java's jar) code as
what they hold. Their wbits byte has bit 7 set (zlib's negative window bits). GNU gzip and
Info-ZIP deflate with their own code, whose output zlib does not reproduce: those stay as they
are, found out after a few kilobytes of output (the comparison stops at the first difference).

Rebuilding depends on this machine's zlib deflating as the compressing machine's did: zlib
1.2.x and 1.3.x do (their deflate output has not changed), zlib-ng does not. Each rebuilt
stream is checked against its CRC, so a difference is an error, never wrong output. Streams
whose compressor is not zlib's (another deflate, other settings) stay as they are.
"""

from __future__ import annotations

import re
import struct
import zlib

from tzip.errors import TzipError

TAG = "deflate"
MAGIC = b"TZDF"
MIN_DEFLATED = 64  # a stream shorter than this is not worth its table entry
MAX_INFLATED = 1 << 26  # a stream that inflates to more is left as it is (memory)
RAW = 0x80  # a table entry's wbits bit for a raw deflate stream
# zlib's header: CM = 8 (deflate) with CINFO <= 7 (window bits - 8), then FLG; the pair is a multiple of 31;
# a gzip member's magic and method; a zip local file header's signature
_HEADER = re.compile(rb"[\x08\x18\x28\x38\x48\x58\x68\x78]|\x1f\x8b\x08|PK\x03\x04")
GZIP_MAGIC, ZIP_LOCAL = b"\x1f\x8b\x08", b"PK\x03\x04"
_PROBE = 1 << 15  # input fed to zlib between comparisons of its output with the stream
# the levels whose FLEVEL (FLG bits 6-7) zlib writes: tried first, then the rest
_LEVELS_BY_FLEVEL = {0: (1, 0), 1: (2, 3, 4, 5), 2: (6,), 3: (9, 7, 8)}
_ALL_LEVELS = (6, 9, 1, 2, 3, 4, 5, 7, 8, 0)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise TzipError("corrupted tzip stream (bad deflate table)")
        b = buf[pos]
        n |= (b & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not b & 0x80:
            return n, pos


def _deflate(raw: bytes, level: int, mem_level: int, wbits: int) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level)
    return c.compress(raw) + c.flush()


def _deflates_to(raw: bytes, stream: bytes, level: int, mem_level: int, wbits: int, whole: bool = True) -> bool:
    """Whether zlib deflates `raw` to exactly `stream`, stopping at the first byte that differs (its
    output so far is a prefix of its whole output). whole=False: `raw` is only the start of the
    input, and agreeing so far is enough."""
    c, view, out = zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level), memoryview(raw), 0
    for at in range(0, len(raw), _PROBE):
        piece = c.compress(view[at : at + _PROBE])
        if stream[out : out + len(piece)] != piece:
            return False
        out += len(piece)
    return not whole or stream[out:] == c.flush()


def _candidates(stream: bytes, wbits: int) -> list[tuple[int, int]]:
    """The (level, memLevel) settings to try, those a zlib header's FLEVEL names first."""
    first = _LEVELS_BY_FLEVEL[stream[1] >> 6] if wbits > 0 else ()  # a raw stream has no FLEVEL
    return [(level, mem_level) for level in (*first, *(v for v in _ALL_LEVELS if v not in first))
            for mem_level in (8, 9)]


def _settings(raw: bytes, stream: bytes, wbits: int) -> tuple[int, int] | None:
    """The (level, memLevel) with which zlib deflates `raw` to exactly `stream`, if any."""
    return next((c for c in _candidates(stream, wbits) if _deflates_to(raw, stream, *c, wbits)), None)


def _raw_start(data: bytes, i: int) -> int | None:
    """Where the raw deflate stream of the gzip member or zip entry whose header is at data[i] starts."""
    if data.startswith(GZIP_MAGIC, i):
        if i + 10 > len(data) or data[i + 3] & 0xE0:
            return None
        flags, at = data[i + 3], i + 10
        if flags & 4:  # FEXTRA
            at += 2 + int.from_bytes(data[at : at + 2], "little")
        for bit in (8, 16):  # FNAME, FCOMMENT: zero-terminated
            if flags & bit:
                end = data.find(b"\0", at, at + 65536)
                if end < 0:
                    return None
                at = end + 1
        return at + 2 * bool(flags & 2)  # FHCRC
    if i + 30 > len(data) or int.from_bytes(data[i + 8 : i + 10], "little") != 8 or data[i + 6] & 1:
        return None  # not deflated, or encrypted
    return i + 30 + int.from_bytes(data[i + 26 : i + 28], "little") + int.from_bytes(data[i + 28 : i + 30], "little")


def _stream_at(data: bytes, view: memoryview, i: int) -> tuple[int, bytes, int, int] | None:
    """(start, inflated bytes, deflated length, wbits) of a complete deflate stream found at data[i]:
    a zlib stream starting there, or the raw stream of a gzip member or zip entry whose header does."""
    if data.startswith((GZIP_MAGIC, ZIP_LOCAL), i):
        start, wbits = _raw_start(data, i), -15
        if start is None or start >= len(data):
            return None
    else:
        if i + 2 > len(data) or (data[i] << 8 | data[i + 1]) % 31 or data[i + 1] & 0x20:  # FDICT: not ours
            return None
        start, wbits = i, (data[i] >> 4) + 8
        if wbits < 9:  # zlib writes a 256-byte window's streams as 512-byte ones: never rebuilt exactly
            return None
    d = zlib.decompressobj(wbits)
    try:
        raw = d.decompress(view[start:], MAX_INFLATED)
    except zlib.error:
        return None
    if not d.eof:
        return None
    return start, raw, len(data) - start - len(d.unused_data), wbits


def gzip_may_rebuild(head: bytes) -> bool:
    """Whether the gzip member starting `head` may be one zlib rebuilds: False only where, for every
    setting, zlib's output for the inflated part of `head` already differs from the member's (GNU
    gzip's does from its first bytes), so that such a file need not be read whole."""
    start = _raw_start(head, 0)
    if start is None or start >= len(head):
        return False
    try:
        raw = zlib.decompressobj(-15).decompress(head[start:])
    except zlib.error:
        return False
    stream = head[start:]  # undecided where zlib has written nothing yet
    return any(_deflates_to(raw, stream, *c, -15, whole=False) for c in _candidates(stream, -15))


def expand(data: bytes) -> bytes | None:
    """The intermediate form of `data` with every zlib stream that zlib rebuilds exactly expanded,
    or None where there is none worth it."""
    view, body, table, pos, count = memoryview(data), bytearray(), bytearray(), 0, 0
    i = 0
    while True:
        m = _HEADER.search(data, i)
        if m is None:
            break
        i = m.start()
        found = _stream_at(data, view, i)
        if found is None or found[2] < MIN_DEFLATED or len(found[1]) <= found[2]:
            i += 1
            continue
        start, raw, n, wbits = found
        stream = data[start : start + n]
        settings = _settings(raw, stream, wbits)
        if settings is None:
            i += 1
            continue
        i = start  # a container's header stays in the body, before its stream
        table += _varint(i - pos) + _varint(len(raw)) + _varint(n) + bytes((*settings, abs(wbits) | RAW * (wbits < 0)))
        table += struct.pack("<I", zlib.crc32(stream))
        body += view[pos:i]
        body += raw
        pos = i = i + n
        count += 1
    if not count:
        return None
    body += view[pos:]
    table = _varint(count) + table
    out = bytes(body + table + struct.pack("<I", len(table)) + MAGIC)
    return out if restore(out) == data else None  # never a form this zlib cannot rebuild


def restore(intermediate: bytes) -> bytes:
    """The original bytes of an intermediate form (expand's output)."""
    if len(intermediate) < 8 or intermediate[-4:] != MAGIC:
        raise TzipError("corrupted tzip stream (no deflate table)")
    size = struct.unpack_from("<I", intermediate, len(intermediate) - 8)[0]
    end = len(intermediate) - 8
    if size > end:
        raise TzipError("corrupted tzip stream (bad deflate table)")
    table, body = intermediate[end - size : end], memoryview(intermediate)[: end - size]
    count, at = _read_varint(table, 0)
    out, pos = bytearray(), 0
    for _ in range(count):
        gap, at = _read_varint(table, at)
        inflated, at = _read_varint(table, at)
        deflated, at = _read_varint(table, at)
        if at + 7 > len(table) or pos + gap + inflated > len(body):
            raise TzipError("corrupted tzip stream (bad deflate table)")
        level, mem_level, wbits = table[at : at + 3]
        crc = struct.unpack_from("<I", table, at + 3)[0]
        at += 7
        if not (0 <= level <= 9 and 1 <= mem_level <= 9 and 9 <= wbits & ~RAW <= 15):
            raise TzipError("corrupted tzip stream (bad deflate table)")
        out += body[pos : pos + gap]
        wbits = -(wbits & ~RAW) if wbits & RAW else wbits
        stream = _deflate(bytes(body[pos + gap : pos + gap + inflated]), level, mem_level, wbits)
        if len(stream) != deflated or zlib.crc32(stream) != crc:
            raise TzipError("cannot rebuild a deflate stream exactly: this machine's zlib "
                            f"({zlib.ZLIB_RUNTIME_VERSION}) deflates differently from the one that compressed the file")
        out += stream
        pos += gap + inflated
    if at != len(table):
        raise TzipError("corrupted tzip stream (bad deflate table)")
    out += body[pos:]
    return bytes(out)
