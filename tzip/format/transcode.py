"""Inputs coded as an intermediate form of themselves: optional transcoding of PNG and FLAC
(`--transcode`: pixel/sample exact, not byte exact), and, always and byte exact, a tar archive
with its headers gathered (format/tar.py) and the expansion of deflate streams (format/deflate.py).

A PNG is stored as its decoded pixels (PGM/PPM, or PAM when it has alpha) and comes back as a
PNG with identical pixels; a 16-bit FLAC is stored as WAV PCM and comes back as a FLAC with
identical samples. Inputs tzip cannot represent exactly (16-bit PNG, 24-bit FLAC) are left
as ordinary files. A text or binary input holding deflate streams that zlib rebuilds exactly (a
PDF's pages and fonts, gzip members, zip entries) is stored with them inflated and comes back
byte for byte; a tar is stored as its headers, then its members' contents, and the deflate
streams of that form are expanded in turn (the tag "tar+deflate").
"""

from __future__ import annotations

import io
from collections.abc import Callable

from tzip.errors import TzipError
from tzip.format import deflate, tar
from tzip.format.container import BYTE_EXACT
from tzip.format.detect import DETECT_BYTES, detect

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXPAND_LIMIT = 1 << 30  # files up to this size are read whole where they are tars or may hold zlib streams


def png_to_pnm(data: bytes) -> bytes | None:
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.load()
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode == "1":
        img = img.convert("L")
    if img.mode == "L":
        return f"P5\n{img.width} {img.height}\n255\n".encode() + img.tobytes()
    if img.mode == "RGB":
        return f"P6\n{img.width} {img.height}\n255\n".encode() + img.tobytes()
    if img.mode in ("RGBA", "LA"):
        depth = len(img.mode)
        head = f"P7\nWIDTH {img.width}\nHEIGHT {img.height}\nDEPTH {depth}\nMAXVAL 255\n"
        tupl = "RGB_ALPHA" if depth == 4 else "GRAYSCALE_ALPHA"
        return (head + f"TUPLTYPE {tupl}\nENDHDR\n").encode() + img.tobytes()
    return None  # 16-bit or exotic modes: not exactly representable here


def flac_to_wav(data: bytes) -> bytes | None:
    import soundfile as sf

    with sf.SoundFile(io.BytesIO(data)) as f:
        if f.subtype != "PCM_16":
            return None
        samples = f.read(dtype="int16", always_2d=True)
        rate = f.samplerate
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def to_intermediate(data: bytes) -> tuple[bytes, str] | None:
    """(decoded bytes, tag) for a PNG or FLAC input that can be transcoded exactly, else None."""
    try:
        if data.startswith(PNG_MAGIC):
            out = png_to_pnm(data)
            return (out, "png") if out is not None else None
        if data.startswith(b"fLaC"):
            out = flac_to_wav(data)
            return (out, "flac") if out is not None else None
    except Exception:
        return None
    return None


def may_expand(head: bytes) -> bool:
    """Whether a file starting with `head` is worth reading whole for its intermediate form: a tar,
    a PDF, a gzip or zip file (.gz, wheels, jars, office documents), or a head that holds a zlib
    stream."""
    if head.startswith(deflate.GZIP_MAGIC):  # a .gz that zlib did not write streams through
        return deflate.gzip_may_rebuild(head)
    return tar.is_tar(head) or head.startswith((b"%PDF-", deflate.ZIP_LOCAL)) or deflate.expand(head) is not None


def byte_exact_form(data: bytes, mode: str | None = None) -> tuple[bytes, str] | None:
    """(the intermediate form, its tag) of a text or binary input (as detected, or `mode`) that is a
    tar archive ("tar"), holds zlib streams that zlib rebuilds exactly ("deflate"), or both
    ("tar+deflate"), else None: images and audio keep their layout."""
    if detect(data[:DETECT_BYTES], mode).kind not in ("text", "binary"):
        return None
    tags = []
    gathered = tar.gather(data)
    if gathered is not None:
        data, tags = gathered, [tar.TAG]
    inflated = deflate.expand(data)
    if inflated is not None:
        data, tags = inflated, [*tags, deflate.TAG]
    return (data, "+".join(tags)) if tags else None


def read_whole(head: bytes, rest: Callable[[], bytes], size: int | None,
               mode: str | None = None) -> tuple[bytes | None, tuple[bytes, str] | None]:
    """(the whole input, its byte-exact form or None) for a file of `size` bytes whose first bytes
    are `head`, where it is worth reading whole (`rest()` reads the others); (None, None) where it
    streams through as it is: too large, of unknown size (a pipe), or nothing to gain."""
    if size is None or size > EXPAND_LIMIT or not may_expand(head):
        return None, None
    data = head + rest()
    return data, byte_exact_form(data, mode)


def from_intermediate(data: bytes, tag: str) -> bytes:
    if tag in BYTE_EXACT:
        for step in reversed(tag.split("+")):
            data = deflate.restore(data) if step == deflate.TAG else tar.restore(data)
        return data
    try:
        buf = io.BytesIO()
        if tag == "png":
            from PIL import Image

            if data.startswith(b"P7"):
                end = data.index(b"ENDHDR\n") + 7
                f = dict(line.split(b" ", 1) for line in data[3 : end - 7].splitlines())
                w, h, depth = int(f[b"WIDTH"]), int(f[b"HEIGHT"]), int(f[b"DEPTH"])
                img = Image.frombytes("RGBA" if depth == 4 else "LA", (w, h), data[end:])
            else:
                img = Image.open(io.BytesIO(data))
            img.save(buf, format="PNG")
        elif tag == "flac":
            import soundfile as sf

            samples, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
            sf.write(buf, samples, rate, format="FLAC", subtype="PCM_16")
        else:
            raise TzipError(f"unknown transcode tag {tag}")
        return buf.getvalue()
    except TzipError:
        raise
    except Exception as e:
        raise TzipError(f"cannot rebuild the transcoded {tag.upper()} file: {e}") from None
