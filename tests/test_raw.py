"""Headerless pixels and samples (format/raw.py): the guesses on real pixels, samples, text and
random bytes, and the compressor's trial that adopts a guessed layout only where it codes smaller."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tzip
from tzip.format import container as C
from tzip.format.detect import detect
from tzip.format.layout import AUDIO, BINARY, IMAGE
from tzip.format.raw import candidates, has_signature, pixel_phase

PIECE = 4096


def payload(sample: bytes) -> bytes:
    """A file's bytes after its header, as the file stores them (little-endian samples)."""
    sp = detect(sample)
    return sample[sp.prefix_len : sp.prefix_len + sp.payload_len]


def tones(n_bytes: int, seed: int = 0) -> bytes:
    """Mono 16-bit little-endian PCM: three tones and a little noise (the test files hold 12 kB)."""
    t = np.arange(n_bytes // 2)
    x = sum(6000 * np.sin(2 * np.pi * f * t / 8000) for f in (220, 347, 1031))
    x += np.random.default_rng(seed).normal(0, 200, len(t))
    return np.round(x).astype("<i2").tobytes()


def header(stream: bytes) -> C.Header:
    return C.Header.unpack(stream[: C.HEADER_SIZE])


@pytest.fixture(scope="module")
def pieces(samples) -> dict[str, bytes]:
    """4 KiB from the middle of each real file's payload, cut where its layout does not begin: an
    odd pixel phase for the RGB image, a row's middle for the grey one."""
    rgb, grey, speech = payload(samples["ppm"]), payload(samples["pgm"]), payload(samples["wav_mono"])
    return {"rgb": rgb[3 * 1000 + 2 :][:PIECE], "grey": grey[1000:][:PIECE],
            "speech": speech[2000:][:PIECE], "text": samples["text"][:PIECE], "random": os.urandom(PIECE)}


def test_guesses_name_the_real_layouts(samples, pieces):
    width = detect(samples["ppm"]).layout.offsets[1]
    (rgb,) = [c for c in candidates(pieces["rgb"]) if c.layout.modality == IMAGE]
    assert rgb.layout.modality == IMAGE and rgb.layout.period == 3
    assert rgb.layout.offsets[1] in (width - 3, width, width + 3)  # a row up, or its diagonal neighbour
    assert rgb.prefix_len == 1  # the piece starts at the third byte of a pixel
    (grey,) = [c for c in candidates(pieces["grey"]) if c.layout.modality == IMAGE]
    assert grey.layout.period == 1 and grey.layout.offsets[1] == detect(samples["pgm"]).layout.offsets[1]
    assert any(c.layout.modality == AUDIO and c.layout.period == 2 and c.prefix_len == 0
               for c in candidates(pieces["speech"]))
    assert candidates(pieces["text"]) == [] and candidates(pieces["random"]) == []


def test_pixel_phase_finds_where_pixels_begin(pieces):
    data = pieces["rgb"]
    for skip in range(3):
        assert pixel_phase(data[skip:], 3) == (1 - skip) % 3


def test_a_signature_rules_out_a_headerless_layout(pieces):
    assert has_signature(b"\x7fELF" + pieces["speech"]) and not candidates(b"\x7fELF" + pieces["speech"])
    tar = bytearray(pieces["speech"])
    tar[257:262] = b"ustar"
    assert has_signature(bytes(tar)) and not candidates(bytes(tar))
    assert not has_signature(pieces["speech"])


@pytest.mark.parametrize("key, modality", [("rgb", IMAGE), ("grey", IMAGE), ("speech", AUDIO)])
def test_headerless_pieces_code_with_their_layout_and_smaller(tiny, pieces, key, modality):
    data = pieces[key]
    packed = tzip.compress(data, model=tiny)
    assert tzip.decompress(packed, model=tiny) == data
    assert header(packed).layout.modality == modality
    as_binary = tzip.compress(data, "binary", model=tiny)
    assert header(as_binary).layout.modality == BINARY
    assert len(packed) < len(as_binary)


def test_text_and_random_bytes_keep_their_detection(tiny, pieces):
    assert header(tzip.compress(pieces["text"], model=tiny)).layout.modality == 0
    assert header(tzip.compress(pieces["random"], model=tiny)).layout.modality == BINARY


def test_the_asked_modality_takes_a_headerless_layout(tiny, pieces):
    packed = tzip.compress(pieces["speech"], "audio", model=tiny)
    assert header(packed).layout.modality == AUDIO and header(packed).swapped
    assert tzip.decompress(packed, model=tiny) == pieces["speech"]


def test_streamed_and_whole_inputs_give_the_same_stream(pieces):
    """Small input whose trial stream is the output, and a long one whose layout is decided on its
    head and coded afresh: either way the bytes of one call, a piece at a time or at once. The
    shipped model: the tiny one's untrained audio network makes synthetic tones code smaller as
    binary."""
    long = tones(5 * 16384)
    for data in (pieces["speech"], long):
        whole = tzip.compress(data)
        c = tzip.TzipCompressor()
        streamed = b"".join(c.compress(data[i : i + 1000]) for i in range(0, len(data), 1000)) + c.flush()
        assert streamed == whole and tzip.decompress(whole) == data
        assert header(whole).layout.modality == AUDIO


def test_a_long_stream_keeps_binary_where_its_head_ends_unlike_samples():
    """Samples for 16 KiB, then random bytes: the head's last bytes are no recording, so the
    stream stays binary however well its first bytes code as samples."""
    data = tones(16384) + os.urandom(3 * 16384)
    assert any(c.layout.modality == AUDIO for c in candidates(data[:16384]))
    assert header(tzip.compress(data[:16384])).layout.modality == AUDIO
    packed = tzip.compress(data)
    assert header(packed).layout.modality == BINARY and tzip.decompress(packed) == data
