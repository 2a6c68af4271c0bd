"""The .tz container: a fixed header, then frames, then an end frame (docs/FORMAT.md).

Every multi-byte integer is little-endian. Each frame carries a CRC32 so corruption is caught
at the frame where it happens; the end frame carries the total length and CRC32 of the
original bytes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from tzip.errors import TzipError
from tzip.format.detect import pcm16_channels
from tzip.format.layout import BINARY, Layout
from tzip.format.methods import BY_NAME, METHODS

MAGIC = b"TZIP"
VERSION = 1
HEADER = struct.Struct("<4sBB8sBIIIIBI")  # magic ver flags model modality offsets*4 period segsize
HEADER_SIZE = HEADER.size + 4  # + crc32
SEGMENT = struct.Struct("<BIII")  # method, raw length, coded length, crc32(raw)
VERBATIM = struct.Struct("<II")  # length, crc32
END = struct.Struct("<QI")  # total original length, crc32(original)
FRAME_SEGMENT, FRAME_VERBATIM, FRAME_END = b"S", b"V", b"E"
(STORED, ZSTD, NEURAL, MATCH, CONTEXT1, CONTEXT, PIXELS, SAMPLES, BITS, LZMA, CLASSICAL, SPARSE, CLASSICAL_PIXELS,
 CLASSICAL_SAMPLES, BITS_NET) = (
    BY_NAME[n].id
    for n in ("stored", "zstd", "neural", "match", "context1", "context", "pixels", "samples", "bits", "lzma",
              "classical", "sparse", "classical-pixels", "classical-samples", "bits-net"))
METHOD_NAMES = {m.id: m.name for m in METHODS}
METHOD_LETTERS = {m.id: m.letter for m in METHODS}  # `tzip info -v`
CODED = tuple(m.id for m in METHODS if m.coded)  # range-coded: their frames may be up to twice the raw size
FLAG_SWAPPED = 1
TRANSCODE_SHIFT = 1  # bits 1-2: 0 none, 1 PNG, 2 FLAC, 3 deflate streams expanded (format/deflate.py)
PREDICTOR_SHIFT = 3  # bits 3-4: order of the audio predictor whose residual was modelled (0 none)
FLAG_CHAINED = 1 << 5  # consecutive segments of one stage-bearing method carry their stages on (codec/chain.py)
FLAG_X86 = 1 << 6  # the payload's x86 call/jump targets were made absolute, segment by segment (codec/x86.py)
FLAG_TAR = 1 << 7  # a tar archive with its headers gathered (format/tar.py), before any deflate expansion
TRANSCODES = {0: None, 1: "png", 2: "flac", 3: "deflate"}
TAR_TRANSCODES = ("tar", "tar+deflate")  # the tar form, then (optionally) its deflate streams expanded
BYTE_EXACT = ("deflate", *TAR_TRANSCODES)  # the transcodes that give back the original byte for byte
MAX_SEGMENT = 1 << 24
MAX_VERBATIM = 1 << 24


def check_prefix(data: bytes) -> None:
    """Raise at once if the first bytes seen so far cannot start a stream this tzip reads."""
    if not MAGIC.startswith(data[:4]):
        raise TzipError("not a tzip stream (bad magic)")
    if len(data) > 4 and data[4] != VERSION:
        raise TzipError(f"unsupported tzip format version {data[4]} (this tzip reads version {VERSION})")


@dataclass
class Header:
    model_id: str
    layout: Layout
    segment_size: int
    swapped: bool = False
    transcode: str | None = None
    predictor: int = 0
    chained: bool = False
    x86: bool = False

    def pack(self) -> bytes:
        tar = self.transcode in TAR_TRANSCODES
        rest = (self.transcode.removeprefix("tar").removeprefix("+") or None) if tar else self.transcode
        code = {v: k for k, v in TRANSCODES.items()}[rest]
        flags = ((FLAG_SWAPPED if self.swapped else 0) | (code << TRANSCODE_SHIFT) | (self.predictor << PREDICTOR_SHIFT)
                 | (FLAG_CHAINED if self.chained else 0) | (FLAG_X86 if self.x86 else 0) | (FLAG_TAR if tar else 0))
        body = HEADER.pack(MAGIC, VERSION, flags, bytes.fromhex(self.model_id), self.layout.modality,
                           *self.layout.offsets, self.layout.period, self.segment_size)
        return body + struct.pack("<I", zlib.crc32(body))

    @staticmethod
    def unpack(data: bytes) -> Header:
        if len(data) < 5 or data[:4] != MAGIC:
            raise TzipError("not a tzip stream (bad magic)")
        if data[4] != VERSION:
            raise TzipError(f"unsupported tzip format version {data[4]} (this tzip reads version {VERSION})")
        if len(data) < HEADER_SIZE:
            raise TzipError("truncated tzip stream (incomplete header)")
        body = data[: HEADER.size]
        if struct.unpack_from("<I", data, HEADER.size)[0] != zlib.crc32(body):
            raise TzipError("corrupted tzip stream (header checksum mismatch)")
        _, _, flags, mid, modality, o0, o1, o2, o3, period, seg = HEADER.unpack(body)
        transcode = TRANSCODES[(flags >> TRANSCODE_SHIFT) & 3]
        if flags & FLAG_TAR:
            transcode = "tar" if transcode is None else f"tar+{transcode}"
        predictor = (flags >> PREDICTOR_SHIFT) & 3
        if (modality > 3 or not 1 <= period <= 64 or not 1 <= seg <= MAX_SEGMENT
                or transcode not in (*TRANSCODES.values(), *TAR_TRANSCODES)
                or predictor > 2 or (predictor and not flags & FLAG_SWAPPED)
                or (predictor and not pcm16_channels(Layout(modality, (o0, o1, o2, o3), period)))
                or (flags & FLAG_X86 and modality != BINARY)):
            raise TzipError("corrupted tzip stream (invalid header fields)")
        return Header(mid.hex(), Layout(modality, (o0, o1, o2, o3), period), seg,
                      bool(flags & FLAG_SWAPPED), transcode, predictor, bool(flags & FLAG_CHAINED),
                      bool(flags & FLAG_X86))


def max_coded(raw_len: int) -> int:
    """The longest body a range-coded (or bit-coded) segment of raw_len bytes may have."""
    return 2 * raw_len + 64


def segment_frame(method: int, raw: bytes, coded: bytes) -> bytes:
    return FRAME_SEGMENT + SEGMENT.pack(method, len(raw), len(coded), zlib.crc32(raw)) + coded


def verbatim_frame(data: bytes) -> bytes:
    return FRAME_VERBATIM + VERBATIM.pack(len(data), zlib.crc32(data)) + data


def end_frame(total: int, crc: int) -> bytes:
    return FRAME_END + END.pack(total, crc)


@dataclass
class Frame:
    kind: bytes
    method: int = 0
    raw_len: int = 0
    crc: int = 0
    body: bytes = b""  # coded bytes (segment) or data (verbatim)
    total: int = 0  # end frame


def read_frame(buf: bytes | bytearray | memoryview, pos: int, segment_size: int) -> tuple[Frame, int] | None:
    """Parse one frame at buf[pos:]; None if more bytes are needed; TzipError if invalid."""
    if pos >= len(buf):
        return None
    kind = bytes(buf[pos : pos + 1])
    if kind == FRAME_SEGMENT:
        if pos + 1 + SEGMENT.size > len(buf):
            return None
        method, raw_len, coded_len, crc = SEGMENT.unpack_from(buf, pos + 1)
        limit = raw_len + 64 if method not in CODED else max_coded(raw_len)
        longest = segment_size
        if method == LZMA:  # a block of segments; LZMA2 adds 3 bytes a 64 KiB chunk to what it cannot pack
            limit, longest = raw_len + raw_len // 8192 + 64, MAX_SEGMENT
        if method not in METHOD_NAMES or raw_len > longest or coded_len > limit:
            raise TzipError("corrupted tzip stream (invalid segment frame)")
        start = pos + 1 + SEGMENT.size
        if start + coded_len > len(buf):
            return None
        return Frame(kind, method, raw_len, crc, bytes(buf[start : start + coded_len])), start + coded_len
    if kind == FRAME_VERBATIM:
        if pos + 1 + VERBATIM.size > len(buf):
            return None
        n, crc = VERBATIM.unpack_from(buf, pos + 1)
        if n > MAX_VERBATIM:
            raise TzipError("corrupted tzip stream (invalid verbatim frame)")
        start = pos + 1 + VERBATIM.size
        if start + n > len(buf):
            return None
        body = bytes(buf[start : start + n])
        if zlib.crc32(body) != crc:
            raise TzipError("corrupted tzip stream (verbatim frame checksum mismatch)")
        return Frame(kind, raw_len=n, crc=crc, body=body), start + n
    if kind == FRAME_END:
        if pos + 1 + END.size > len(buf):
            return None
        total, crc = END.unpack_from(buf, pos + 1)
        return Frame(kind, crc=crc, total=total), pos + 1 + END.size
    raise TzipError("corrupted tzip stream (unknown frame type)")


def streams(data: bytes) -> list[tuple[Header, list[Frame]]]:
    """Headers and frames of every stream in `data` (whole .tz bytes), without decoding any segment."""
    out, pos = [], 0
    while pos < len(data):
        header = Header.unpack(data[pos : pos + HEADER_SIZE])
        pos += HEADER_SIZE
        frames: list[Frame] = []
        while not frames or frames[-1].kind != FRAME_END:
            got = read_frame(data, pos, header.segment_size)
            if got is None:
                raise TzipError("truncated tzip stream (ended before its end frame)")
            frame, pos = got
            frames.append(frame)
        out.append((header, frames))
    if not out:
        raise TzipError("not a tzip stream (empty input)")
    return out
