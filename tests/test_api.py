"""Container and library API: round trips, corruption, no expansion, streaming (docs/DESIGN.md §5)."""

from __future__ import annotations

import io
import os
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tzip
from tzip.api import TzipCompressor, TzipDecompressor
from tzip.format import container as C
from tzip.format.detect import detect

NEURAL = ("neural",)


def roundtrip(data: bytes, model, **kw) -> bytes:
    packed = tzip.compress(data, model=model, **kw)
    assert tzip.decompress(packed, model=model) == data
    return packed


@pytest.mark.parametrize("data", [b"", b"x", b"\x00", b"ab" * 3, bytes(range(256))])
def test_tiny_inputs(tiny, data):
    roundtrip(data, tiny)
    roundtrip(data, tiny, methods=NEURAL)


@pytest.mark.parametrize("key", ["text", "wav_mono", "wav_stereo", "pgm", "ppm", "bmp", "tiff", "random"])
def test_real_files_round_trip_through_the_neural_coder(tiny, samples, key):
    packed = roundtrip(samples[key], tiny, methods=NEURAL, segment_size=1024)
    streams = {"text": "text", "random": "binary", "wav_mono": "audio", "wav_stereo": "audio"}
    assert C.Header.unpack(packed[: C.HEADER_SIZE]).layout.modality == \
        {"text": 0, "image": 1, "audio": 2, "binary": 3}[streams.get(key, "image")]


def test_detection_keeps_container_bytes(samples):
    for key, kind in [("wav_mono", "wav"), ("ppm", "pnm"), ("pgm", "pnm"), ("bmp", "bmp"), ("tiff", "tiff")]:
        split = detect(samples[key])
        assert split.kind == kind and split.prefix_len > 0
    assert detect(samples["wav_stereo"]).layout.period == 4  # 2 channels x 2 bytes, MSB first


def test_long_repeats_and_many_segments(tiny):
    data = b"abcabcabd" * 5000 + bytes(20000) + os.urandom(5000)
    packed = roundtrip(data, tiny, segment_size=4096)
    assert len(packed) < len(data) // 5


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=700), st.sampled_from([256, 300, 1000]))
def test_property_round_trip(tiny, data, segment_size):
    roundtrip(data, tiny, segment_size=segment_size, methods=("neural", "stored"))


@pytest.mark.parametrize("header, expected", [
    (b"P5\n512 400\n255\n", 256 * 512),  # 256 grey rows
    (b"P6\n451 300\n255\n", 193 * 1353),  # RGB: as many rows of 1353 bytes as fit in 256 KiB
    (b"P6\n200 300\n255\n", 256 * 600),  # narrow RGB: 256 rows
    (b"P6\n4000 30\n255\n", 21 * 12000),  # wide rows: as many as fit in 256 KiB
])
def test_default_image_segment_holds_rows(tiny, header, expected):
    packed = tzip.compress(header + bytes(3000), model=tiny, methods=("stored",))
    assert C.Header.unpack(packed[: C.HEADER_SIZE]).segment_size == expected


def test_random_data_does_not_expand(tiny):
    data = os.urandom(40_000)
    packed = tzip.compress(data, model=tiny, segment_size=16384)
    segments = -(-len(data) // 16384)
    overhead = C.HEADER_SIZE + 1 + C.END.size + segments * (1 + C.SEGMENT.size)
    assert len(packed) <= len(data) + overhead
    assert overhead < 128


def test_cross_configuration(tiny, samples, monkeypatch):
    """Compress one segment at a time on 1 thread; decompress batched on 2: same bytes."""
    data = samples["text"] + samples["ppm"][:3000]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        monkeypatch.setattr(tzip.api, "ENCODE_BATCH_BYTES", 1)  # code each segment on its own
        c = TzipCompressor(model=tiny, segment_size=512, methods=NEURAL)
        packed = b"".join(c.compress(data[i : i + 700]) for i in range(0, len(data), 700)) + c.flush()
        monkeypatch.undo()
        torch.set_num_threads(2)
        assert tzip.decompress(packed, model=tiny) == data
        assert packed == tzip.compress(data, model=tiny, segment_size=512, methods=NEURAL)
    finally:
        torch.set_num_threads(before)


def test_worker_processes_give_identical_streams(tiny, samples, monkeypatch):
    """Segments coded by 2 worker processes: byte-identical to in-process, both ways, errors kept."""
    import tzip.codec.workers

    monkeypatch.setattr(tzip.codec.workers, "POOL_MIN_BYTES", 0)
    data = samples["text"] + samples["wav_stereo"][:4000]
    alone = tzip.compress(data, model=tiny, segment_size=512, methods=NEURAL)
    pooled = tzip.compress(data, model=tiny, segment_size=512, methods=NEURAL, workers=2)
    assert pooled == alone
    assert tzip.decompress(alone, model=tiny, workers=2) == data
    bad = bytearray(alone)
    bad[len(bad) // 2] ^= 0x10
    with pytest.raises(tzip.TzipError):
        tzip.decompress(bytes(bad), model=tiny, workers=2)
    assert tzip.decompress(alone, model=tiny, workers=2) == data  # the workers survive bad input
    tzip.codec.workers.shutdown()


def test_corruption_is_always_detected(tiny, samples):
    """Every flipped bit is an error, or decodes to the original: the range coder's last word has
    bits no symbol depends on, which is harmless (never wrong output)."""
    data = samples["text"][:1500] + samples["wav_mono"][:800]
    packed = tzip.compress(data, model=tiny, segment_size=512)
    rng = np.random.default_rng(0)
    offsets = sorted(set(range(0, 60)) | set(int(x) for x in rng.integers(0, len(packed), 120)))
    errors = 0
    for off in offsets:
        bad = bytearray(packed)
        bad[off] ^= 1 << int(rng.integers(0, 8))
        try:
            out = tzip.decompress(bytes(bad), model=tiny)
        except tzip.TzipError:
            errors += 1
            continue
        assert out == data, f"flip at {off} gave wrong output, no error"
    assert errors >= 0.95 * len(offsets)


def test_a_zstd_segment_declaring_another_size_is_an_error(tiny):
    """A flipped bit in a zstd frame's header can declare a content size of terabytes: refused as
    corrupt before zstd would allocate for it."""
    data = b"tzip keeps what zstd declares in check. " * 40
    packed = tzip.compress(data, model=tiny, methods=("zstd",))
    at = packed.index(bytes.fromhex("28b52ffd")) + 4  # the frame header descriptor
    for bit in range(8):
        bad = bytearray(packed)
        bad[at] ^= 1 << bit
        try:
            assert tzip.decompress(bytes(bad), model=tiny) == data
        except tzip.TzipError:
            pass


def test_truncation_is_always_detected(tiny, samples):
    packed = tzip.compress(samples["text"][:2000], model=tiny, segment_size=512, methods=("neural", "stored"))
    for n in range(0, len(packed)):
        with pytest.raises(tzip.TzipError):
            tzip.decompress(packed[:n], model=tiny)


def test_error_messages(tiny, tmp_path):
    with pytest.raises(tzip.TzipError, match="not a tzip stream"):
        tzip.decompress(b"hello world, this is not compressed")
    packed = bytearray(tzip.compress(b"hello", model=tiny))
    packed[4] = 9
    with pytest.raises(tzip.TzipError, match="unsupported tzip format version 9"):
        tzip.decompress(bytes(packed))
    other = tzip.compress(b"hello" * 100, model=tiny, methods=NEURAL)
    header = C.Header.unpack(other[: C.HEADER_SIZE])
    header.model_id = "0123456789abcdef"
    with pytest.raises(tzip.TzipError, match="model 0123456789abcdef is needed"):
        tzip.decompress(header.pack() + other[C.HEADER_SIZE :])


def test_concatenated_streams_and_unused_data(tiny):
    a, b = tzip.compress(b"first ", model=tiny), tzip.compress(b"second", model=tiny)
    assert tzip.decompress(a + b, model=tiny) == b"first second"
    d = TzipDecompressor(tiny)
    assert d.decompress(a + b"trailing") == b"first "
    assert d.eof and d.unused_data == b"trailing"
    with pytest.raises(EOFError):
        d.decompress(b"more")


def test_incremental_objects_bounded_output(tiny, samples):
    data = samples["text"] * 3
    c = TzipCompressor(model=tiny, segment_size=1024)
    packed = b"".join(c.compress(data[i : i + 999]) for i in range(0, len(data), 999)) + c.flush()
    with pytest.raises(ValueError):
        c.compress(b"x")
    d = TzipDecompressor(tiny)
    out = bytearray()
    for i in range(0, len(packed), 100):
        out += d.decompress(packed[i : i + 100], max_length=50)
        while not d.needs_input and not d.eof:
            out += d.decompress(b"", max_length=50)
    assert bytes(out) == data and d.eof and not d.needs_input


def test_tzipfile_and_open(tiny, tmp_path, samples):
    path = tmp_path / "a.tz"
    with tzip.open(path, "wb", model=tiny, segment_size=1024) as f:
        for i in range(0, len(samples["text"]), 333):
            f.write(samples["text"][i : i + 333])
    with tzip.open(path, "rb", model=tiny) as f:
        assert f.read(10) == samples["text"][:10]
        assert f.read() == samples["text"][10:]
    with tzip.open(path, "rt", model=tiny, encoding="latin-1", newline="") as f:
        assert f.readline() == samples["text"].decode("latin-1").splitlines(True)[0]
    buf = io.BytesIO()
    with tzip.TzipFile(buf, "wb", model=tiny) as f:
        f.write(b"to a file object")
    assert tzip.decompress(buf.getvalue(), model=tiny) == b"to a file object"


def test_open_takes_the_modality_beside_the_file_mode(tiny, tmp_path, samples):
    """`modality` names the content and `mode` the file mode, as lzma's `format` and `mode` do."""
    path = tmp_path / "b.tz"
    with tzip.open(path, "wb", modality="binary", model=tiny, segment_size=1024) as f:
        f.write(samples["text"][:3000])
    assert C.Header.unpack(path.read_bytes()[: C.HEADER_SIZE]).layout.modality == 3
    with tzip.open(path, "rb", model=tiny) as f:
        assert f.peek(1)[:1] == samples["text"][:1]
        text = samples["text"][:3000]
        first = f.readline()
        assert first == text.splitlines(True)[0]
        rest = bytearray(5000)
        n = f.readinto(rest)
        assert n > 0 and bytes(rest[:n]) == text[len(first) : len(first) + n]
        assert f.read() == text[len(first) + n :]
    assert tzip.decompress(tzip.compress(b"abc" * 300, "text", model=tiny), model=tiny) == b"abc" * 300
    with pytest.raises(ValueError, match="modality must be one of"):
        tzip.compress(b"abc", modality="video", model=tiny)


def test_transcode_is_a_bool_and_the_compressor_takes_only_a_known_source(tiny, samples):
    assert tzip.decompress(tzip.compress(b"not a png", model=tiny, transcode=True), model=tiny) == b"not a png"
    for bad in (True, "gif"):
        with pytest.raises(ValueError, match="transcoded_from"):
            tzip.TzipCompressor(model=tiny, transcoded_from=bad)


def test_png_and_flac_transcode_are_pixel_and_sample_exact(tiny, samples, tmp_path):
    import soundfile as sf
    from PIL import Image

    packed = tzip.compress(samples["png"], model=tiny, transcode=True)
    assert C.Header.unpack(packed[: C.HEADER_SIZE]).transcode == "png"
    out = tzip.decompress(packed, model=tiny)
    a, b = Image.open(io.BytesIO(samples["png"])), Image.open(io.BytesIO(out))
    assert a.size == b.size and a.convert("RGBA").tobytes() == b.convert("RGBA").tobytes()
    wav = samples["wav_stereo"]
    samples_in, rate = sf.read(io.BytesIO(wav), dtype="int16")
    flac = io.BytesIO()
    sf.write(flac, samples_in, rate, format="FLAC", subtype="PCM_16")
    packed = tzip.compress(flac.getvalue(), model=tiny, transcode=True)
    assert C.Header.unpack(packed[: C.HEADER_SIZE]).transcode == "flac"
    got, rate2 = sf.read(io.BytesIO(tzip.decompress(packed, model=tiny)), dtype="int16")
    assert rate2 == rate and np.array_equal(got, samples_in)


def test_header_checksums(tiny):
    packed = tzip.compress(b"abc", model=tiny)
    assert zlib.crc32(packed[: C.HEADER.size]) == int.from_bytes(packed[C.HEADER.size : C.HEADER_SIZE], "little")


def test_decompressor_fed_one_byte_at_a_time(tiny):
    data = b"one byte at a time " * 20
    packed = tzip.compress(data, model=tiny, methods=("neural", "stored"))
    d = TzipDecompressor(tiny)
    out = b"".join(d.decompress(packed[i : i + 1]) for i in range(len(packed)))
    assert out == data and d.eof
    with pytest.raises(tzip.TzipError, match="bad magic"):
        TzipDecompressor(tiny).decompress(b"TZX")


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("order", [0, 1, 2])
def test_audio_predictor_residual_is_exactly_inverted(channels, order):
    from tzip.format.detect import predict_residual, predict_restore

    rng = np.random.default_rng(channels * 10 + order)
    for n in (0, 1, 2 * channels - 1, 2 * channels, 2 * channels * 50 + 3):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        res = predict_residual(data, channels, order)
        assert len(res) == n and predict_restore(res, channels, order) == data
    # on a smooth signal the order-2 residual is small: the reason to model it
    t = np.arange(4000)
    wave = (8000 * np.sin(t / 40)).astype(">i2").tobytes()
    if order == 2 and channels == 1:
        resid = np.frombuffer(predict_residual(wave, 1, 2), dtype=">i2")
        assert np.abs(resid[2:]).max() < 20


def test_streams_of_a_model_with_an_audio_predictor(samples, tmp_path):
    """A model trained on order-2 residuals: the header says so, every method round-trips, and
    a header claiming a predictor on non-audio is rejected."""
    from tzip.engine.config import ModelConfig
    from tzip.engine.modelfile import parse
    from tzip.engine.reference import IntModel
    from tzip.format import container as C
    from tzip.train.export import export

    from .conftest import build_tiny

    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, window=16, block=4, mem_slots=4, audio_predictor=2)
    model = IntModel(parse(export(build_tiny(cfg=cfg)).to_bytes()))
    for key in ("wav_mono", "wav_stereo"):
        wav = samples[key]
        for methods in (("neural",), ("zstd",), ("stored",), ("neural", "zstd", "stored"), ("stored", "lzma")):
            blob = tzip.compress(wav, model=model, methods=methods, segment_size=1000)
            assert C.Header.unpack(blob[: C.HEADER_SIZE]).predictor == 2
            # an lzma block holds several segments' residuals: the decoder undoes each on its own
            assert ("lzma" in methods) == (C.LZMA in [f.method for _, fs in C.streams(blob) for f in fs])
            assert tzip.decompress(blob, model=model) == wav
    text = tzip.compress(samples["text"][:500], model=model)
    assert C.Header.unpack(text[: C.HEADER_SIZE]).predictor == 0
    h = C.Header.unpack(text[: C.HEADER_SIZE])
    forged = C.Header(h.model_id, h.layout, h.segment_size, True, None, 2).pack()
    with pytest.raises(tzip.TzipError, match="invalid header"):
        C.Header.unpack(forged)


def test_the_encoder_frees_each_piece_before_the_network_makes_the_next():
    """Compression's memory bound (docs/SPEED.md, Memory): a piece's network frequencies (32 MB at
    PIECE_ROWS) are freed before the pass over the next piece makes its own, in the first pass of
    encode_segment and in the second, where another way than the last stage's wins."""
    import weakref

    from tzip.codec.encoder import encode_segment
    from tzip.engine.config import ModelConfig
    from tzip.format.layout import Layout

    class Network:
        cfg = ModelConfig()  # no hint slots

        def __init__(self):
            self.made = []

        def segment_frequencies(self, symbols, layout, rows, hints=None):
            assert all(piece() is None for piece in self.made), "an earlier piece is still alive"
            f = np.full((rows[1], 256), 256, dtype=np.int32)  # uniform: noise codes best as it is
            self.made.append(weakref.ref(f))
            return f

    x = np.random.default_rng(5).integers(0, 256, 5000, dtype=np.uint8)
    net = Network()
    way, _ = encode_segment(net, x, Layout.text(), ("neural", "match"), piece_rows=1000)
    assert way == "neural" and len(net.made) == 10  # both passes ran, five pieces each
