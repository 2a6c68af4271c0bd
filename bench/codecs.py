"""The codecs the benchmark compares, each with a round trip the harness checks.

A codec maps an uncompressed bench file (text, PPM/PGM, WAV, or any binary file) to compressed
bytes and back. Generic compressors run on text and binary (xz on every modality) and must
return the file byte for byte; image and audio codecs must return identical pixels / samples
(compared on the decoded arrays). A codec whose library or tool is missing reports why instead
of being dropped.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class Missing(Exception):
    """The codec cannot run here; the message says why."""


@dataclass
class Codec:
    name: str
    modalities: tuple[str, ...]
    encode: Callable[[bytes], bytes]
    decode: Callable[[bytes], bytes]
    same: Callable[[bytes, bytes], bool] = lambda a, b: a == b  # round-trip equality

    def available(self) -> str | None:
        """None if usable, else the reason it is missing."""
        try:
            self.decode(self.encode(PROBE[self.modalities[0]]()))
        except Missing as e:
            return str(e)
        return None


# -- probes: tiny valid inputs per modality, to check availability -----------------------
def _probe_image() -> bytes:
    return b"P6\n2 2\n255\n" + bytes(range(12))


def _probe_audio() -> bytes:
    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.arange(64, dtype=np.int16), 8000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


PROBE = {"text": lambda: b"probe text " * 10, "image": _probe_image, "audio": _probe_audio,
         "binary": lambda: bytes(range(256)) * 4}


# -- pixels and samples ------------------------------------------------------------------
def pixels(data: bytes):
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def same_pixels(a: bytes, b: bytes) -> bool:
    """Identical pixels; a grey image decoded as RGB (WebP) must have R = G = B = grey."""
    x, y = pixels(a), pixels(b)
    if x.mode == "L" and y.mode == "RGB":
        x = x.convert("RGB")
    return x.size == y.size and x.mode == y.mode and x.tobytes() == y.tobytes()


def samples(data: bytes):
    import soundfile as sf

    return sf.read(io.BytesIO(data), dtype="int16", always_2d=True)


def same_samples(a: bytes, b: bytes) -> bool:
    import numpy as np

    (x, r1), (y, r2) = samples(a), samples(b)
    return r1 == r2 and x.shape == y.shape and np.array_equal(x, y)


def pnm_of(img) -> bytes:
    magic = b"P6" if img.mode == "RGB" else b"P5"
    return magic + f"\n{img.width} {img.height}\n255\n".encode() + img.tobytes()


# -- generic ------------------------------------------------------------------------------
def _brotli():
    try:
        import brotli
    except ImportError as e:
        raise Missing("python package brotli not installed") from e
    return brotli


def _zstd():
    import zstandard

    return zstandard


GENERIC = [
    Codec("gzip -9", ("text", "binary"), lambda d: gzip.compress(d, 9, mtime=0), gzip.decompress),
    Codec("bzip2 -9", ("text", "binary"), lambda d: bz2.compress(d, 9), bz2.decompress),
    Codec("xz -9e", ("text", "image", "audio", "binary"),
          lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
    Codec("zstd --ultra -22", ("text", "binary"), lambda d: _zstd().ZstdCompressor(level=22).compress(d),
          lambda d: _zstd().ZstdDecompressor().decompress(d)),
    Codec("brotli -q 11", ("text", "binary"), lambda d: _brotli().compress(d, quality=11),
          lambda d: _brotli().decompress(d)),
]


# -- images (on decoded pixels) -----------------------------------------------------------
def _pil_encode(fmt: str, **kw) -> Callable[[bytes], bytes]:
    def enc(data: bytes) -> bytes:
        buf = io.BytesIO()
        pixels(data).save(buf, format=fmt, **kw)
        return buf.getvalue()

    return enc


def _pil_decode(data: bytes) -> bytes:
    return pnm_of(pixels(data))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise Missing(f"{name} not found (Debian: {TOOL_PACKAGES.get(name, name)})")
    return path


TOOL_PACKAGES = {"cjxl": "libjxl-tools", "djxl": "libjxl-tools", "flac": "flac", "wavpack": "wavpack",
                 "wvunpack": "wavpack"}


def _run_tool(args: list[str], data: bytes, in_suffix: str, out_suffix: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / f"in{in_suffix}", Path(d) / f"out{out_suffix}"
        src.write_bytes(data)
        cmd = [a.replace("{in}", str(src)).replace("{out}", str(dst)) for a in args]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return dst.read_bytes()


def _jxl_encode(data: bytes) -> bytes:
    png = _pil_encode("PNG")(data)
    return _run_tool([_tool("cjxl"), "{in}", "{out}", "-d", "0", "-e", "9"], png, ".png", ".jxl")


def _jxl_decode(data: bytes) -> bytes:
    return _pil_decode(_run_tool([_tool("djxl"), "{in}", "{out}"], data, ".jxl", ".png"))


def _webp_check() -> None:
    from PIL import features

    if not features.check("webp"):
        raise Missing("Pillow built without WebP")


def _webp_encode(data: bytes) -> bytes:
    _webp_check()
    return _pil_encode("WEBP", lossless=True, quality=100, method=6)(data)


IMAGE = [
    Codec("PNG (Pillow, optimize)", ("image",), _pil_encode("PNG", optimize=True), _pil_decode, same_pixels),
    Codec("WebP lossless (m6, q100)", ("image",), _webp_encode, _pil_decode, same_pixels),
    Codec("JPEG-XL lossless (e9)", ("image",), _jxl_encode, _jxl_decode, same_pixels),
]


# -- audio (on PCM samples) ---------------------------------------------------------------
def _flac_encode(data: bytes) -> bytes:
    return _run_tool([_tool("flac"), "-8", "--no-padding", "-s", "-f", "-o", "{out}", "{in}"], data, ".wav", ".flac")


def _flac_decode(data: bytes) -> bytes:
    return _run_tool([_tool("flac"), "-d", "-s", "-f", "-o", "{out}", "{in}"], data, ".flac", ".wav")


def _wavpack_encode(data: bytes) -> bytes:
    return _run_tool([_tool("wavpack"), "-hhx", "-q", "-y", "{in}", "-o", "{out}"], data, ".wav", ".wv")


def _wavpack_decode(data: bytes) -> bytes:
    return _run_tool([_tool("wvunpack"), "-q", "-y", "{in}", "-o", "{out}"], data, ".wv", ".wav")


AUDIO = [
    Codec("FLAC -8 (no padding)", ("audio",), _flac_encode, _flac_decode, same_samples),
    Codec("WavPack -hhx", ("audio",), _wavpack_encode, _wavpack_decode, same_samples),
]


def tzip_codec(model: str | None = None, workers: int = 0) -> Codec:
    """tzip as the CLI runs it: worker processes on every core (started once, on first use), the
    modality detected from the bytes (no modality given), as for `tzip -c`."""
    import tzip

    return Codec("tzip", ("text", "image", "audio", "binary"),
                 lambda d: tzip.compress(d, model=model, workers=workers),
                 lambda d: tzip.decompress(d, model=model, workers=workers))


def tzip_classical_codec(model: str | None = None, workers: int = 0) -> Codec:
    """tzip's classical-only path (bench/classical.py): the same coder and stages as `tzip_codec`,
    with the model's output head zeroed so the network's distribution is uniform."""
    import tzip
    from bench.classical import classical_model

    path = str(classical_model(model))
    return Codec("tzip classical-only", ("text", "image", "audio", "binary"),
                 lambda d: tzip.compress(d, model=path, workers=workers),
                 lambda d: tzip.decompress(d, model=path, workers=workers))


def classical() -> list[Codec]:
    return GENERIC + IMAGE + AUDIO
