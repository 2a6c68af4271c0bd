"""Tar archives with their headers gathered (format/tar.py): every archive, well formed or not,
comes back byte for byte; the members that gather are exactly those whose blocks are intact; and
through the API, the streaming decoder, the container's header and the command line."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tzip
from tzip.api import stream_decompress
from tzip.errors import TzipError
from tzip.format import container as C
from tzip.format import tar
from tzip.format.layout import BINARY, Layout
from tzip.format.transcode import byte_exact_form, from_intermediate

from .conftest import DATA, cli

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "tzip" / "format").glob("*.py")) + sorted((ROOT / "tzip" / "codec").glob("*.py"))


def archive(fmt: int = tarfile.GNU_FORMAT, extra: list[tuple[str, bytes]] = ()) -> bytes:
    """A tar of real files (this package's format sources, a directory, a symlink, an empty file,
    a member of exactly one block, one with a 120-character name) as Python's tarfile writes it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            t.addfile(info, io.BytesIO(data))

        d = tarfile.TarInfo("pkg")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        t.addfile(d)
        for path in SOURCES:
            add(f"pkg/{path.name}", path.read_bytes())
        link = tarfile.TarInfo("pkg/link")
        link.type, link.linkname = tarfile.SYMTYPE, "raw.py"
        t.addfile(link)
        add("pkg/empty", b"")
        add("pkg/block", bytes(range(256)) * 2)
        add("pkg/" + "n" * 120, b"a long name\n")
        for name, data in extra:
            add(name, data)
    return buf.getvalue()


def members(form: bytes) -> int:
    return tar.TAIL.unpack_from(form, len(form) - tar.TAIL.size)[0]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_archives_gather_every_member_and_restore_byte_for_byte(fmt):
    data = _ustar() if fmt == tarfile.USTAR_FORMAT else archive(fmt)
    form = tar.gather(data)
    assert form is not None and tar.restore(form) == data
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        blocks = sum(1 for _ in t.getmembers())  # long names and pax records are header-shaped members too
    assert members(form) >= blocks
    assert len(form) < len(data)  # the padding is gone
    assert form.startswith(data[:512])


def _ustar() -> bytes:
    """A ustar archive (no long names: ustar cannot hold them)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for path in SOURCES:
            t.add(path, arcname=path.name)
    return buf.getvalue()


def test_headers_come_first_then_the_contents_without_padding():
    data = _ustar()
    form = tar.gather(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        infos = t.getmembers()
        contents = b"".join(t.extractfile(m).read() for m in infos)
    assert members(form) == len(infos)
    assert form[: len(infos) * 512] == b"".join(data[m.offset : m.offset_data] for m in infos)
    assert form[len(infos) * 512 : len(infos) * 512 + len(contents)] == contents
    assert not any(form[len(infos) * 512 + len(contents) : -tar.TAIL.size])  # the end-of-archive zeros


@pytest.mark.parametrize("damage", ["padding", "checksum", "size", "cut header"])
def test_an_archive_damaged_at_its_first_file_is_left_alone(damage):
    """The directory's header gathers, the first file's does not: fewer than MIN_MEMBERS are not worth the form."""
    data = bytearray(archive())
    at = 512  # the first file's header (the directory has no content)
    size = int(data[at + 124 : at + 136].strip(b" \0"), 8)
    if damage == "padding":
        data[at + 512 + size] = 1
    elif damage == "checksum":
        data[at + 150] ^= 1
    elif damage == "size":
        data[at + 124 : at + 136] = b"77777777777\0"  # more than the archive holds
    else:
        data = data[: at + 300]
    assert tar.gather(bytes(data)) is None


@pytest.mark.parametrize("damage", ["bad padding", "truncated", "appended"])
def test_an_archive_gathers_up_to_the_damage_and_keeps_the_rest_as_it_is(damage):
    data = bytearray(_ustar())
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as t:
        infos = t.getmembers()
    victim = [i for i, m in enumerate(infos) if m.size % 512 and i > tar.MIN_MEMBERS][0]
    if damage == "bad padding":
        data[infos[victim].offset_data + infos[victim].size] = 0x55
        gathered = victim  # the members before it
    elif damage == "truncated":
        data = data[: infos[victim].offset_data + 100]
        gathered = victim
    else:
        data += b"not a tar block" * 100
        gathered = len(infos)
    data = bytes(data)
    form = tar.gather(data)
    assert members(form) == gathered
    assert tar.restore(form) == data


def test_what_is_not_a_tar_is_left_alone():
    for data in (b"", b"x", bytes(512), bytes(10240), (DATA / "alice_head.txt").read_bytes(), os.urandom(5000)):
        assert tar.gather(data) is None
        assert not tar.is_tar(data)
    assert tar.is_tar(archive())


def test_corrupted_forms_raise_one_clear_error():
    form = tar.gather(archive())
    bad_count = form[:-8] + (10**6).to_bytes(4, "little") + form[-4:]
    bad_header = bytearray(form)
    bad_header[200] ^= 0xFF  # a header byte: its checksum no longer holds
    for bad in (b"", b"TZTR", form[:-1], form[:-4] + b"XXXX", bad_count, bytes(bad_header)):
        with pytest.raises(TzipError, match="corrupted"):
            tar.restore(bad)


def test_the_header_records_the_form_and_refuses_impossible_combinations():
    for t in ("tar", "tar+deflate", "deflate", "png", None):
        h = C.Header("00" * 8, Layout(BINARY, (1, 0, 0, 0), 1), 65536, transcode=t)
        assert C.Header.unpack(h.pack()).transcode == t
    packed = bytearray(C.Header("00" * 8, Layout(BINARY, (1, 0, 0, 0), 1), 65536, transcode="png").pack())
    packed[5] |= C.FLAG_TAR
    packed[-4:] = zlib.crc32(bytes(packed[:-4])).to_bytes(4, "little")
    with pytest.raises(TzipError, match="invalid header"):
        C.Header.unpack(bytes(packed))


def test_the_api_gathers_a_tar_and_the_streaming_decoder_restores_it(tiny):
    data = archive()
    packed = tzip.compress(data, model=tiny)
    [(header, _)] = C.streams(packed)
    assert header.transcode == "tar"
    assert tzip.decompress(packed, model=tiny) == data
    chunks = iter([packed[i : i + 1000] for i in range(0, len(packed), 1000)])
    assert b"".join(stream_decompress(lambda: next(chunks, b""), tiny)) == data
    plain = tzip.compress(data, model=tiny, expand=False)
    assert C.streams(plain)[0][0].transcode is None and tzip.decompress(plain, model=tiny) == data


def test_a_tar_holding_zlib_streams_is_gathered_then_inflated(tiny):
    page = (DATA / "alice_head.txt").read_bytes()[:6000]
    data = archive(extra=[("doc.z", zlib.compress(page, 9))])
    packed = tzip.compress(data, model=tiny)
    assert C.streams(packed)[0][0].transcode == "tar+deflate"
    assert tzip.decompress(packed, model=tiny) == data


def test_the_command_line_gathers_a_tar_and_shows_it(tiny_path, tmp_path):
    data = archive() + bytes(20 * 512)  # tarfile's record padding and more zero blocks
    src = tmp_path / "src.tar"
    src.write_bytes(data)
    cli(tiny_path, "-k", src)
    assert b"tar gathered" in cli(tiny_path, "-l", f"{src}.tz")
    assert b"headers gathered" in cli(tiny_path, "info", f"{src}.tz")
    assert cli(tiny_path, "-dc", f"{src}.tz") == data
    piped = cli(tiny_path, "-c", "-", stdin=data)
    assert C.streams(piped)[0][0].transcode is None  # a pipe streams through: nothing is read whole
    assert cli(tiny_path, "-dc", "-", stdin=piped) == data


def _zip_of_sources() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in SOURCES[:4]:
            z.writestr(path.name, path.read_bytes())
    return buf.getvalue()


MUTABLE = {"tar": _ustar(), "zip": _zip_of_sources(), "gzip": gzip.compress(SOURCES[0].read_bytes(), mtime=0)}


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(MUTABLE)), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6),
       st.floats(0, 1))
def test_damaged_archives_come_back_exactly_or_are_left_alone(kind, flips, keep):
    """Any archive, its bytes changed and cut anywhere: its form (if any) rebuilds it exactly."""
    data = bytearray(MUTABLE[kind])
    for where, value in flips:
        data[min(int(where * len(data)), len(data) - 1)] = value
    data = bytes(data[: max(1, int(keep * len(data)))])
    got = byte_exact_form(data)
    assert got is None or from_intermediate(*got) == data


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(MUTABLE)), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1,
                                                    max_size=4))
def test_damaged_forms_rebuild_or_raise_one_clear_error(kind, flips):
    """A form whose bytes were changed (a corrupted stream that its CRCs did not catch) gives back
    bytes or a TzipError, never another exception."""
    form, tag = byte_exact_form(MUTABLE[kind])
    form = bytearray(form)
    for where, value in flips:
        form[min(int(where * len(form)), len(form) - 1)] = value
    try:
        from_intermediate(bytes(form), tag)
    except TzipError:
        pass
