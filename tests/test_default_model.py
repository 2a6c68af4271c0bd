"""The shipped default model loads, passes its bound checks and round-trips real data."""

from __future__ import annotations

import pytest

import tzip
from tzip.engine.registry import DEFAULT_MODEL, MODELS_DIR, get_model


def test_default_model_round_trip(samples):
    model = get_model()
    assert (MODELS_DIR / DEFAULT_MODEL).exists()
    data = samples["text"][:400]
    packed = tzip.compress(data, methods=("neural",))
    assert tzip.decompress(packed) == data
    assert packed[6:14] == bytes.fromhex(model.model_id)


def test_golden_stream_of_the_default_model():
    """A stream the shipped model made when it was exported still decodes and re-encodes byte for byte.

    This pins the engine's arithmetic across machines and versions: if it fails, either the
    engine changed (a format break: bump the model file version) or the default model did
    (regenerate tests/data/alice_head.golden.tz with tzip.compress(data, methods=("neural",), segment_size=65536)).
    """
    from pathlib import Path

    data_dir = Path(__file__).parent / "data"
    data = (data_dir / "alice_head.txt").read_bytes()[:2000]
    golden = (data_dir / "alice_head.golden.tz").read_bytes()
    assert golden[6:14] == bytes.fromhex(get_model().model_id), "golden stream is from another default model"
    assert tzip.decompress(golden) == data
    assert tzip.compress(data, methods=("neural",), segment_size=65536) == golden  # the size it was made at


@pytest.mark.parametrize("method", ["match", "context1", "context", "bits"])
def test_golden_streams_of_the_adaptive_stages(method):
    """Streams coded with the match model, the context counts and the bit mixer (docs/FORMAT.md,
    methods 3-5 and 8)
    still decode and re-encode byte for byte: their integer arithmetic is part of the format.
    They are unchained (tests/test_chain.py pins a chained one). Regenerate with
    tzip.compress(data, methods=(method,), segment_size=65536, chain=False) only for a new default model."""
    from pathlib import Path

    data_dir = Path(__file__).parent / "data"
    data = (data_dir / "alice_head.txt").read_bytes()[:4000]
    golden = (data_dir / f"alice_head.{method}.golden.tz").read_bytes()
    assert golden[6:14] == bytes.fromhex(get_model().model_id), "golden stream is from another default model"
    assert tzip.decompress(golden) == data
    assert tzip.compress(data, methods=(method,), segment_size=65536, chain=False) == golden


def classical_sample() -> bytes:
    """Text, then a table of 16-byte records (a counter, zeros, a small cycle, a tag): the word,
    sparse and record contexts of method 10 all take part."""
    from pathlib import Path

    text = (Path(__file__).parent / "data" / "alice_head.txt").read_bytes()[:3000]
    rows = b"".join(i.to_bytes(4, "little") + bytes(6) + bytes([i % 7, 0x40]) + b"row\0" for i in range(200))
    return text + rows


def test_golden_stream_of_the_classical_method():
    """A chained binary stream coded with method 10 (the bit mixer's sparse, word and record contexts
    and bit histories, coded bit by bit; docs/FORMAT.md) still decodes and re-encodes byte for byte.
    Regenerate with tzip.compress(classical_sample(), modality="binary", methods=("classical",),
    segment_size=2048) only for a new default model."""
    from pathlib import Path

    data = classical_sample()
    golden = (Path(__file__).parent / "data" / "classical.golden.tz").read_bytes()
    assert golden[6:14] == bytes.fromhex(get_model().model_id), "golden stream is from another default model"
    assert tzip.decompress(golden) == data
    assert tzip.compress(data, modality="binary", methods=("classical",), segment_size=2048) == golden


def test_golden_stream_of_the_networks_binary_way():
    """The same sample coded with method 11 (method 10's stages and contexts fed the network's
    distribution, range-coded; docs/FORMAT.md) still decodes and re-encodes byte for byte, and the
    network makes it smaller than method 10 on this text-led sample. Regenerate with
    tzip.compress(classical_sample(), modality="binary", methods=("sparse",), segment_size=2048)
    only for a new default model."""
    from pathlib import Path

    from tzip.format import container as C

    data = classical_sample()
    golden = (Path(__file__).parent / "data" / "sparse.golden.tz").read_bytes()
    assert golden[6:14] == bytes.fromhex(get_model().model_id), "golden stream is from another default model"
    [(_, frames)] = C.streams(golden)
    assert [f.method for f in frames if f.kind == C.FRAME_SEGMENT] == [C.SPARSE] * 4
    assert tzip.decompress(golden) == data
    assert tzip.compress(data, modality="binary", methods=("sparse",), segment_size=2048) == golden
    classical = tzip.compress(data, modality="binary", methods=("classical",), segment_size=2048)
    assert len(golden) < len(classical)


@pytest.mark.parametrize("key, name", [("pgm", "camera_crop"), ("ppm", "astronaut_crop")])
def test_golden_stream_of_the_pixel_model(samples, key, name):
    """A grey PGM and an RGB PPM coded with method 6 (the pixel model mixed in; docs/FORMAT.md)
    still decode and re-encode byte for byte: its tables and integer arithmetic are part of the
    format. Regenerate with tzip.compress(samples[key], methods=("pixels",)) only for a new default model."""
    from pathlib import Path

    golden = (Path(__file__).parent / "data" / f"{name}.pixels.golden.tz").read_bytes()
    assert golden[6:14] == bytes.fromhex(get_model().model_id), "golden stream is from another default model"
    assert tzip.decompress(golden) == samples[key]
    assert tzip.compress(samples[key], methods=("pixels",)) == golden


def test_golden_stream_of_the_sample_model(samples):
    """A WAV coded with method 7 (the sample model mixed in; docs/FORMAT.md) still decodes and
    re-encodes byte for byte. Regenerate with tzip.compress(samples["wav_mono"], methods=("samples",),
    segment_size=16384) only for a new default model."""
    from pathlib import Path

    golden = (Path(__file__).parent / "data" / "speech.samples.golden.tz").read_bytes()
    assert golden[6:14] == bytes.fromhex(get_model().model_id), "golden stream is from another default model"
    assert tzip.decompress(golden) == samples["wav_mono"]
    assert tzip.compress(samples["wav_mono"], methods=("samples",), segment_size=16384) == golden  # made at
