"""zlib streams expanded byte-exactly (format/deflate.py): found wherever they are, rebuilt with the
settings that made them, left alone where zlib cannot rebuild them, checked on the way back; and
through the API, the streaming decoder and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

import tzip
from tzip.api import stream_decompress
from tzip.errors import TzipError
from tzip.format import container as C
from tzip.format import deflate
from tzip.format.transcode import expand_deflate

from .conftest import DATA

ALICE = (DATA / "alice_head.txt").read_bytes()


def zlib_stream(raw: bytes, level: int = 6, mem_level: int = 8, wbits: int = 15, strategy: int = 0) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level, strategy)
    return c.compress(raw) + c.flush()


def pdf_like() -> tuple[bytes, list[bytes]]:
    """A PDF-shaped file: objects whose streams are zlib streams of text made with several settings,
    one made by a deflater zlib does not imitate (Huffman only), one cut short."""
    pages = [ALICE[i * 900 : (i + 1) * 900] for i in range(6)]
    streams = [zlib_stream(pages[0]), zlib_stream(pages[1], 9), zlib_stream(pages[2], 1, 9),
               zlib_stream(pages[3], 6, 8, 12), zlib_stream(pages[4], strategy=zlib.Z_HUFFMAN_ONLY),
               zlib_stream(pages[5])[:-30]]
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    for i, s in enumerate(streams):
        out += f"{i + 1} 0 obj\n<< /Length {len(s)} /Filter /FlateDecode >>\nstream\n".encode() + s
        out += b"\nendstream\nendobj\n"
    out += b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
    return bytes(out), pages


def test_the_streams_zlib_rebuilds_are_expanded_and_restored_byte_for_byte():
    data, pages = pdf_like()
    out = deflate.expand(data)
    assert out is not None and deflate.restore(out) == data
    body = out[: out.index(b"trailer")]
    for page in pages[:4]:  # four settings zlib rebuilds: inflated in place
        assert page in body
    assert pages[4] not in out and pages[5] not in out  # another deflater's stream, a cut one: as they were
    assert zlib_stream(pages[4], strategy=zlib.Z_HUFFMAN_ONLY) in out


@pytest.mark.parametrize("data", [b"", b"\x78", b"\x78\x9c", bytes(range(256)) * 64,
                                  np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes(),
                                  b"\x78\x9c" * 5000, zlib_stream(b"ab" * 10)])
def test_inputs_without_a_stream_worth_it_are_left_alone(data):
    assert deflate.expand(data) is None  # (the last: a stream shorter than MIN_DEFLATED)


def test_a_stream_at_the_very_start_and_end_and_streams_back_to_back():
    a, b = zlib_stream(ALICE[:3000]), zlib_stream(ALICE[3000:6000], 9)
    for data in (a, a + b, b"x" + a + b + b"y"):
        out = deflate.expand(data)
        assert out is not None and deflate.restore(out) == data


def test_a_damaged_table_or_a_different_zlib_is_an_error_not_wrong_output(monkeypatch):
    data, _ = pdf_like()
    out = deflate.expand(data)
    for bad in (out[:-1], out[:-8] + b"\xff\xff\xff\x7f" + out[-4:], b"", out[:10] + b"TZDF"):
        with pytest.raises(TzipError):
            deflate.restore(bad)
    real = deflate._deflate
    monkeypatch.setattr(deflate, "_deflate", lambda raw, level, mem, wbits: real(raw, level % 9 + 1, mem, wbits))
    with pytest.raises(TzipError, match="deflates differently"):
        deflate.restore(out)


def test_images_and_audio_keep_their_layout():
    stream = zlib_stream(ALICE[:4000])
    pgm = b"P5\n64 64\n255\n" + (stream + bytes(4096))[:4096]
    assert expand_deflate(pgm) is None
    assert expand_deflate(b"junk " + stream) is not None


def test_the_api_expands_and_the_streaming_decoder_restores(tiny):
    data, _ = pdf_like()
    packed = tzip.compress(data, model=tiny)
    [(header, _)] = C.streams(packed)
    assert header.transcode == "deflate"
    assert tzip.decompress(packed, model=tiny) == data
    assert len(packed) < 0.9 * len(tzip.compress(data, model=tiny, expand=False))
    chunks = iter([packed[i : i + 100] for i in range(0, len(packed), 100)])
    assert b"".join(stream_decompress(lambda: next(chunks, b""), tiny)) == data


def cli(tiny_path, *args) -> bytes:
    """`tzip ARGS` in a subprocess with the tiny model; its standard output."""
    env = {**os.environ, "TZIP_MODEL": str(tiny_path), "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "tzip.cli", *map(str, args)], env=env, check=True,
                          capture_output=True, timeout=300).stdout


def test_the_command_line_expands_a_file_and_lists_it(tiny_path, tmp_path):
    data, _ = pdf_like()
    src = tmp_path / "doc.pdf"
    src.write_bytes(data)
    cli(tiny_path, "-k", src)
    assert b"inflated" in cli(tiny_path, "-l", f"{src}.tz")
    assert cli(tiny_path, "-dc", f"{src}.tz") == data


def test_the_command_line_keeps_a_pdf_without_streams_whole(tiny_path, tmp_path):
    """A file read whole because its head looks like a PDF, with nothing to inflate, is coded as it
    is, every byte of it (past the first read too)."""
    data = b"%PDF-1.4\n" + bytes(range(256)) * 600  # 150 kB, more than one read, no zlib stream
    assert deflate.expand(data) is None
    src = tmp_path / "plain.pdf"
    src.write_bytes(data)
    cli(tiny_path, "-k", src)
    assert cli(tiny_path, "-dc", f"{src}.tz") == data
