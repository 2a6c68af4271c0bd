"""zlib streams expanded byte-exactly (format/deflate.py): found wherever they are, rebuilt with the
settings that made them, left alone where zlib cannot rebuild them, checked on the way back; and
through the API, the streaming decoder and the command line."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import tzip
from tzip.api import stream_decompress
from tzip.errors import TzipError
from tzip.format import container as C
from tzip.format import deflate
from tzip.format.transcode import byte_exact_form, may_expand

from .conftest import DATA, cli

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


def test_gzip_members_as_pythons_gzip_writes_them_are_expanded():
    """Raw deflate after a gzip header (a name, a comment, an extra field and a header CRC or not),
    members back to back, with text between; the headers and trailers stay as they are."""
    plain = gzip.compress(ALICE[:3000], compresslevel=9, mtime=0)
    buf = io.BytesIO()
    with gzip.GzipFile("alice.txt", "wb", compresslevel=6, fileobj=buf, mtime=1) as f:
        f.write(ALICE[3000:])
    named = buf.getvalue()
    fields = bytearray(named[:10])
    fields[3] |= 4 | 16 | 2  # FEXTRA, FCOMMENT, FHCRC
    fields = bytes(fields[:10]) + b"\x04\x00abcd" + named[10:named.index(b"\0", 10) + 1] + b"note\0" + b"\x12\x34"
    extra = fields + named[named.index(b"\0", 10) + 1 :]
    first, second = ALICE[:3000], ALICE[3000:]
    for data, texts in ((plain, [first]), (named, [second]), (plain + named, [first, second]),
                        (b"head " + extra + b" tail", [second])):
        out = deflate.expand(data)
        assert out is not None and deflate.restore(out) == data
        assert all(text in out for text in texts)  # every member inflated in place


def test_zip_entries_as_zipfile_writes_them_are_expanded_the_rest_left_alone():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("a.txt"), ALICE[:3000], compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        z.writestr("b.txt", ALICE[3000:], compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("stored.txt", ALICE[:500], compress_type=zipfile.ZIP_STORED)
        z.writestr("tiny.txt", b"ab" * 10, compress_type=zipfile.ZIP_DEFLATED)
    data = buf.getvalue()
    out = deflate.expand(data)
    assert out is not None and deflate.restore(out) == data
    assert ALICE[:3000] in out and ALICE[3000:] in out
    huffman = zlib.compressobj(9, zlib.DEFLATED, -15, 8, zlib.Z_HUFFMAN_ONLY)  # a deflater zlib does not imitate
    entry = huffman.compress(ALICE[:8000]) + huffman.flush()
    other = b"PK\x03\x04" + bytes(4) + b"\x08\x00" + bytes(16) + b"\x01\x00\x00\x00x" + entry
    assert deflate.expand(other) is None
    encrypted = bytearray(data)
    encrypted[6] |= 1  # the first entry's encryption flag: its bytes are not deflate
    out = deflate.expand(bytes(encrypted))
    assert ALICE[:3000] not in out and ALICE[3000:] in out


def test_a_gnu_gzip_stream_zlib_does_not_rebuild_is_given_up_early(monkeypatch):
    """Its first differing output byte ends each try: zlib runs over a few probes, not the whole input."""
    raw = np.random.default_rng(2).integers(0, 4, 1 << 22, dtype=np.uint8).tobytes()
    strange = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_FILTERED)
    data = b"\x1f\x8b\x08\x00" + bytes(6) + strange.compress(raw) + strange.flush() + bytes(8)
    fed = []
    real = zlib.compressobj

    class Counting:
        def __init__(self, *a):
            self.c = real(*a)

        def compress(self, piece):
            fed.append(len(piece))
            return self.c.compress(piece)

        def flush(self):
            return self.c.flush()

    monkeypatch.setattr(deflate.zlib, "compressobj", Counting)
    assert deflate.expand(data) is None
    assert sum(fed) < len(raw)  # 20 settings tried, far less than one whole pass over the input


def test_only_a_gzip_file_zlib_may_have_written_is_read_whole():
    """The command reads a .gz whole only where its head does not already rule zlib out, so the
    .gz files of GNU gzip (another deflater) stream through in bounded memory."""
    text = b"".join(p.read_bytes() for p in sorted((Path(__file__).parents[1] / "tzip").rglob("*.py")))
    head = slice(0, 1 << 16)  # what the command reads first
    assert may_expand(gzip.compress(text, mtime=0)[head])
    if shutil.which("gzip"):
        gnu = subprocess.run(["gzip", "-6", "-n", "-c"], input=text, capture_output=True, check=True).stdout
        assert not may_expand(gnu[head])
    assert not may_expand(b"\x1f\x8b\x08\x00" + bytes(6) + b"not deflate")


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
    assert byte_exact_form(pgm) is None
    assert byte_exact_form(b"junk " + stream) is not None


def test_the_api_expands_and_the_streaming_decoder_restores(tiny):
    data, _ = pdf_like()
    packed = tzip.compress(data, model=tiny)
    [(header, _)] = C.streams(packed)
    assert header.transcode == "deflate"
    assert tzip.decompress(packed, model=tiny) == data
    assert len(packed) < 0.9 * len(tzip.compress(data, model=tiny, expand=False))
    chunks = iter([packed[i : i + 100] for i in range(0, len(packed), 100)])
    assert b"".join(stream_decompress(lambda: next(chunks, b""), tiny)) == data


def zip_file(level: int = 6) -> bytes:
    """A zip of text as Python's zipfile writes one (a wheel, say), starting with its first entry."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as z:
        for i in range(0, len(ALICE), 1500):
            z.writestr(f"part{i}.txt", ALICE[i : i + 1500])
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["pdf", "zip", "gz"])
def test_the_command_line_expands_a_file_and_lists_it(tiny_path, tmp_path, kind):
    data = {"pdf": pdf_like()[0], "zip": zip_file(), "gz": gzip.compress(ALICE, mtime=0)}[kind]
    src = tmp_path / f"doc.{kind}"
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
