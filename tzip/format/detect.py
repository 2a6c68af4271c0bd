"""Content detection: split a file into verbatim container bytes and a modelled payload.

Parsers look only at the head of a file (the first DETECT_BYTES) and return where the payload
starts and how long its header declares it to be, so a stream never has to be held whole.

WAV (PCM 8/16-bit), PPM/PGM, BMP (uncompressed) and baseline uncompressed TIFF keep their
header and trailer bytes verbatim; only the payload is modelled, with the layout of its
modality. 16-bit audio is modelled most-significant byte first, so the payload is byte-swapped
(an exact involution), and, for models trained that way, as the residual of a fixed integer
predictor (FLAC's orders 1-2, docs/DESIGN.md §3). Anything else is text (if it decodes mostly as text) or binary.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from tzip.format.layout import AUDIO, IMAGE, MODALITY_NAMES, Layout

DETECT_BYTES = 1 << 16
UNBOUNDED = 1 << 62


@dataclass(frozen=True)
class Split:
    prefix_len: int  # container header bytes, stored verbatim
    payload_len: int  # payload length the header declares (UNBOUNDED: to the end)
    layout: Layout
    kind: str  # "wav", "pnm", "bmp", "tiff", "text", "binary"
    swapped: bool = False  # payload is 16-bit samples, modelled byte-swapped (MSB first)

    def unit(self) -> int:
        """Segment sizes are multiples of this (a pixel row for images, a frame for audio)."""
        lay = self.layout
        return lay.offsets[1] if lay.modality == IMAGE and lay.offsets[1] else lay.period


def split_bytes(data: bytes, mode: str | None = None) -> tuple[bytes, bytes, bytes, Split]:
    """(prefix, payload in modelling order, suffix, split) of a whole file in memory."""
    sp = detect(data[:DETECT_BYTES], mode)
    end = min(len(data), sp.prefix_len + sp.payload_len)
    payload = data[sp.prefix_len : end]
    return data[: sp.prefix_len], swap16(payload) if sp.swapped else payload, data[end:], sp


def swap16(data: bytes) -> bytes:
    """Swap each pair of bytes (little-endian <-> MSB-first); an odd last byte is left alone."""
    even = len(data) & ~1
    out = bytearray(data)
    out[0:even:2], out[1:even:2] = data[1:even:2], data[0:even:2]
    return bytes(out)


def pcm16_channels(layout: Layout) -> int:
    """Channels of a 16-bit audio layout whose frame is its phase period (segments and training
    crops then start on a frame), 0 for any other layout: the audio predictor applies to these."""
    if layout.modality != AUDIO or layout.offsets[1] % 2 or not layout.offsets[1]:
        return 0
    channels = layout.offsets[1] // 2
    return channels if Layout.audio(channels, 2) == layout and layout.period == 2 * channels else 0


def _frames(data: bytes, channels: int) -> tuple[np.ndarray, bytes]:
    """Whole MSB-first 16-bit frames as int64 [frames, channels], and the partial frame after them."""
    whole = len(data) // (2 * channels) * (2 * channels)
    return np.frombuffer(data[:whole], dtype=">u2").astype(np.int64).reshape(-1, channels), data[whole:]


def predict_residual(payload: bytes, channels: int, order: int) -> bytes:
    """MSB-first 16-bit frames -> residuals of FLAC's fixed order-`order` predictor, per channel.

    The residual is the order-th difference of each channel's samples modulo 2^16, with zero
    history before the first frame (so a segment needs nothing outside itself). A trailing
    partial frame is kept as it is. Exactly inverted by `predict_restore`.
    """
    x, tail = _frames(payload, channels)
    for _ in range(order):
        x = np.diff(x, axis=0, prepend=0)
    return (x & 0xFFFF).astype(">u2").tobytes() + tail


def predict_restore(residual: bytes, channels: int, order: int) -> bytes:
    """Inverse of `predict_residual`: `order` running sums per channel, modulo 2^16."""
    x, tail = _frames(residual, channels)
    for _ in range(order):
        x = np.cumsum(x, axis=0) & 0xFFFF
    return x.astype(">u2").tobytes() + tail


def to_model_order(segment: bytes, swapped: bool, predictor: int, channels: int) -> bytes:
    """A payload segment as the model sees it: MSB first, then the predictor's residual."""
    return predict_residual(swap16(segment), channels, predictor) if swapped else segment


def from_model_order(segment: bytes, swapped: bool, predictor: int, channels: int) -> bytes:
    return swap16(predict_restore(segment, channels, predictor)) if swapped else segment


def layout_for(mode: str, channels: int = 1, row_bytes: int = 0, sample_bytes: int = 2) -> Layout:
    if mode == "image":
        return Layout.image(channels, row_bytes)
    if mode == "audio":
        return Layout.audio(channels, sample_bytes)
    return Layout.text() if mode == "text" else Layout.binary()


def parse_wav(data: bytes) -> Split | None:
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt " and size >= 16:
            fmt = struct.unpack_from("<HHIIHH", data, body)
        elif cid == b"data" and fmt is not None:
            tag, channels, _, _, _, bits = fmt
            if tag not in (1, 0xFFFE) or bits not in (8, 16) or not 1 <= channels <= 8:
                return None
            sb = bits // 8
            size = UNBOUNDED if size == 0xFFFFFFFF else size - size % (channels * sb)
            return Split(body, size, Layout.audio(channels, sb), "wav", sb == 2)
        pos = body + size + (size & 1)
    return None


def parse_pam(data: bytes) -> Split | None:
    """PAM (P7), 8-bit: what tzip writes for transcoded PNGs with alpha."""
    end = data.find(b"ENDHDR\n")
    if not data.startswith(b"P7\n") or end < 0:
        return None
    fields = dict(line.split(b" ", 1) for line in data[3:end].splitlines() if b" " in line)
    try:
        w, h, depth, maxval = (int(fields[k]) for k in (b"WIDTH", b"HEIGHT", b"DEPTH", b"MAXVAL"))
    except (KeyError, ValueError):
        return None
    if maxval > 255 or w < 1 or not 1 <= depth <= 4:
        return None
    return Split(end + 7, w * h * depth, Layout.image(depth, w * depth), "pnm")


def parse_pnm(data: bytes) -> Split | None:
    if data[:2] == b"P7":
        return parse_pam(data)
    if len(data) < 8 or data[:2] not in (b"P5", b"P6"):
        return None
    fields, pos = [], 2
    while len(fields) < 3 and pos < len(data):
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            while pos < len(data) and data[pos : pos + 1] not in (b"\n", b"\r"):
                pos += 1
            continue
        start = pos
        while pos < len(data) and data[pos : pos + 1].isdigit():
            pos += 1
        if start == pos:
            return None
        fields.append(int(data[start:pos]))
    if len(fields) < 3 or pos >= len(data) or fields[2] > 255 or fields[0] < 1:
        return None
    pos += 1  # single whitespace after maxval
    channels = 3 if data[:2] == b"P6" else 1
    row = fields[0] * channels
    return Split(pos, row * fields[1], Layout.image(channels, row), "pnm")


def parse_bmp(data: bytes) -> Split | None:
    if len(data) < 54 or data[:2] != b"BM":
        return None
    offset = struct.unpack_from("<I", data, 10)[0]
    hsize, width, height, planes, bpp, compression = struct.unpack_from("<IiiHHI", data, 14)
    if hsize < 40 or bpp not in (8, 24, 32) or compression not in (0, 3) or width <= 0:
        return None
    channels = bpp // 8
    row = (width * channels + 3) & ~3
    if offset >= len(data) or height == 0:
        return None
    return Split(offset, row * abs(height), Layout.image(channels, row), "bmp")


def parse_tiff(data: bytes) -> Split | None:
    """Baseline TIFF, uncompressed, 8-bit grey/RGB, strips contiguous in the file."""
    if len(data) < 8 or data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    e = "<" if data[:2] == b"II" else ">"
    try:
        ifd = struct.unpack_from(e + "I", data, 4)[0]
        (n,) = struct.unpack_from(e + "H", data, ifd)
        tags = {}
        for i in range(n):
            tag, typ, count, value = struct.unpack_from(e + "HHI4s", data, ifd + 2 + 12 * i)
            size = {3: 2, 4: 4}.get(typ)
            if size is None:
                continue
            fmt = e + ("H" if size == 2 else "I")
            if count * size <= 4:
                vals = [struct.unpack_from(fmt, value, size * k)[0] for k in range(count)]
            else:
                off = struct.unpack(e + "I", value)[0]
                vals = [struct.unpack_from(fmt, data, off + size * k)[0] for k in range(count)]
            tags[tag] = vals
    except struct.error:
        return None
    width, comp = tags.get(256, [0])[0], tags.get(259, [1])[0]
    spp, bits = tags.get(277, [1])[0], tags.get(258, [8])
    offsets, counts = tags.get(273), tags.get(279)
    if comp != 1 or any(b != 8 for b in bits) or not offsets or not counts or width < 1:
        return None
    start = offsets[0]
    for off, cnt, nxt in zip(offsets, counts, offsets[1:]):
        if off + cnt != nxt:
            return None
    end = offsets[-1] + counts[-1]
    if start >= end or start > len(data):
        return None
    return Split(start, end - start, Layout.image(spp, width * spp), "tiff")


def looks_like_text(sample: bytes) -> bool:
    if not sample:
        return True
    if b"\x00" in sample:
        return False
    printable = sum(1 for b in sample if b >= 32 or b in (9, 10, 13))
    return printable / len(sample) > 0.95


def detect(head: bytes, mode: str | None = None) -> Split:
    """Split a file from its head; `mode` (text|image|audio|binary) overrides content detection."""
    if mode in (None, "image", "audio"):
        for parser in (parse_wav, parse_pnm, parse_bmp, parse_tiff):
            got = parser(head)
            if got is not None and (mode is None or MODALITY_NAMES[got.layout.modality] == mode):
                return got
    if mode == "text" or (mode is None and looks_like_text(head[:65536])):
        return Split(0, UNBOUNDED, Layout.text(), "text")
    return Split(0, UNBOUNDED, Layout.binary(), "binary")

