"""The bit mixer: exact tables, C and Python give the same integers, decompression's steps give
compression's frequencies, and method 8 ("bits") segments round-trip and fail cleanly."""

from __future__ import annotations

import numpy as np
import pytest

import tzip
from tzip import api
from tzip.codec.encoder import code_length
from tzip.engine import native
from tzip.engine.config import ModelConfig
from tzip.format import container as C
from tzip.format.layout import Layout
from tzip.stages import bits, mixing

from .conftest import DATA
from .mixed_stage import batch_equals_scan, coder_round_trip, damaged_fails, refused_elsewhere
from .test_match import network_like

ONE = 1 << 16
needs_c = pytest.mark.skipif(not native.available(), reason="the C library is unavailable")
ALICE = np.frombuffer((DATA / "alice_head.txt").read_bytes(), dtype=np.uint8)


def texts() -> list[np.ndarray]:
    """Real prose, and what stresses the state: a long repeat, noise, zeros, long lines, one byte."""
    rng = np.random.default_rng(8)
    lines = b"".join(b"%d: " % i + b"Word " * (i % 30) + b"\n" for i in range(60))
    return [ALICE[:2500], np.frombuffer(b"abcd" * 300, dtype=np.uint8), rng.integers(0, 256, 600, dtype=np.uint8),
            np.zeros(700, dtype=np.uint8), np.frombuffer(lines[:1500], dtype=np.uint8), ALICE[:1]]


def test_tables_are_exact_and_consistent():
    assert mixing.SQUASH[2048] == 2048 and mixing.SQUASH[0] == 1 and mixing.SQUASH[-1] == 4095
    assert (np.diff(mixing.SQUASH) >= 0).all() and (np.diff(mixing.STRETCH) >= 0).all()
    d = np.arange(-2047, 2048)
    p = mixing.SQUASH[d + 2048]
    assert np.abs(p - 4096 / (1 + np.exp(-d / 256))).max() <= 0.5 + 1e-9
    assert (mixing.SQUASH[mixing.STRETCH[1:4095] + 2048] >= np.arange(1, 4095)).all()  # stretch is squash's inverse
    assert mixing.STRETCH[2048] == 0


@needs_c
@pytest.mark.parametrize("contexts", [bits.WORDS, bits.SPARSE])
def test_c_scan_equals_python(contexts):
    for i, x in enumerate([*texts(), np.frombuffer(x86_like(3000), dtype=np.uint8)]):
        f = network_like(x, i)
        got = bits.apply(x, f, Layout.text(), contexts=contexts)
        want = bits.apply(x, f, Layout.text(), native=False, contexts=contexts)
        assert np.array_equal(got, want), i
        assert (got >= 1).all() and (got.sum(1) == ONE).all()


@needs_c
def test_c_scan_equals_python_with_the_network_row():
    """The net set (method 14's last stage) reads the network's own rows beside the incoming ones:
    C and Python give the same integers, and with the network's row equal to the incoming one it
    still differs from method 8's mixer (the extra input and weight sets), so the row is read."""
    for i, x in enumerate(texts()):
        net = network_like(x, i)
        incoming = network_like(x, i + 7)
        got = bits.Net.apply(x, incoming, Layout.text(), net=net)
        want = bits.Net.apply(x, incoming, Layout.text(), native=False, net=net)
        assert np.array_equal(got, want), i
        assert (got >= 1).all() and (got.sum(1) == ONE).all()
        if len(x) > 100:
            assert not np.array_equal(got, bits.Net.apply(x, incoming, Layout.text(), net=incoming)), i
    with pytest.raises(ValueError, match="network row"):
        bits.Net.apply(ALICE[:10], network_like(ALICE[:10]), Layout.text(), net=network_like(ALICE[:9]))


def test_the_network_row_teaches_the_mixer_to_trust_the_network():
    """Where the network knows each byte (half of its mass on it) and the incoming rows do not
    (flat), the net set codes far under method 8's mixer, which sees only the flat rows."""
    x = ALICE[:3000]
    flat = np.full((len(x), 256), ONE // 256, dtype=np.int32)
    knowing = np.full((len(x), 256), 128, dtype=np.int32)
    knowing[np.arange(len(x)), x] += ONE // 2
    with_row = code_length(x, bits.Net.apply(x, flat, Layout.text(), net=knowing))
    assert with_row < 0.5 * code_length(x, bits.apply(x, flat, Layout.text()))


def x86_like(n: int, seed: int = 4) -> bytes:
    """Fixed-width instructions: an opcode from a few, then a 4-byte little-endian operand that
    counts up, so the opcode repeats five bytes apart and the operand's high bytes barely change."""
    rng = np.random.default_rng(seed)
    out = bytearray()
    for i in range(n // 5 + 1):
        out += bytes([int(rng.choice([0xE8, 0x8B, 0x48]))]) + (0x401000 + 16 * i).to_bytes(4, "little")
    return bytes(out[:n])


def test_the_sparse_contexts_learn_records_the_text_set_does_not():
    """On fixed-width records the sparse contexts (gaps up to 8 bytes) see the fields through the
    varying bytes, where text's words and columns see nothing: clearly fewer bits from a flat start."""
    x = np.frombuffer(x86_like(20000), dtype=np.uint8)
    flat = np.full((len(x), 256), ONE // 256, dtype=np.int32)
    words = code_length(x, bits.apply(x, flat, Layout.binary(), contexts=bits.WORDS))
    sparse = code_length(x, bits.apply(x, flat, Layout.binary(), contexts=bits.SPARSE))
    assert sparse < 0.9 * words


def test_the_mixer_learns_text():
    """From a flat start, prose costs well under 8 bits a byte and a repeated line almost nothing;
    given good frequencies the mixer keeps them (it trusts f from the start)."""
    flat = np.full((len(ALICE), 256), ONE // 256, dtype=np.int32)
    assert code_length(ALICE, bits.apply(ALICE, flat, Layout.text())) < 0.55 * code_length(ALICE, flat)
    line = np.frombuffer(b"The quick brown fox jumps over the lazy dog.\n" * 40, dtype=np.uint8)
    got = bits.apply(line, np.full((len(line), 256), ONE // 256, dtype=np.int32), Layout.text())
    assert code_length(line[900:], got[900:]) < 0.02 * 8 * len(line[900:])
    x = ALICE[:2000]
    half = np.full((len(x), 256), 128, dtype=np.int32)  # half the mass on the right byte: 1 bit a byte
    half[np.arange(len(x)), x] += ONE // 2
    assert code_length(x, bits.apply(x, half, Layout.text())) < 1.02 * code_length(x, half)


def test_only_text_and_binary_layouts():
    x = np.zeros(10, dtype=np.uint8)
    assert bits.applies(Layout.text()) and bits.applies(Layout.binary())
    assert not bits.applies(Layout.image(1, 10)) and not bits.applies(Layout.audio(2, 2))
    with pytest.raises(ValueError):
        bits.apply(x, network_like(x), Layout.image(1, 10))


@pytest.mark.parametrize("engine", ["c", "python"])
@pytest.mark.parametrize("way", ["bits", "classical", "bits-net"])
def test_batch_steps_equal_whole_segment_scan(engine, way, monkeypatch):
    segs = [ALICE[:700], ALICE[700:900], ALICE[900:1500]]
    ways = [way, "context", way]
    batch = {"bits": bits.BitsBatch, "classical": bits.Sparse.batch, "bits-net": bits.Net.batch}[way]
    batch_equals_scan(engine, monkeypatch, bits, batch, segs, ways, Layout.text())


def test_coder_round_trip_and_choice(tiny):
    segs = [bytes(ALICE[:2500]), bytes(ALICE[2500:4001])]
    coder_round_trip(tiny, "bits", segs, Layout.text(), elsewhere=Layout.image(1, 27))


def test_api_round_trips_with_the_bit_mixer():
    data = bytes(ALICE)
    packed = tzip.compress(data, methods=tuple(m for m in tzip.api.METHODS if m != "bits-net"))
    assert tzip.decompress(packed) == data
    assert C.FRAME_SEGMENT + bytes([C.BITS]) in packed
    without = tzip.compress(data, methods=tuple(m for m in tzip.api.METHODS if m not in ("bits", "bits-net")))
    assert len(packed) < len(without)


def test_text_chains_take_the_bit_mixer_with_the_network_row(monkeypatch):
    """A text chain's way is method 14 (on 6 KB the trial keeps method 8, which learns faster, so it is
    left out here); its segments decode with the C stages and with the Python ones (the network's
    rows kept before the stages in both)."""
    from tzip.codec.encoder import chain_way
    from tzip.stages import counts, match

    assert chain_way(api.METHODS, Layout.text()) == "bits-net"
    data = bytes(ALICE)
    packed = tzip.compress(data, segment_size=2048, methods=tuple(m for m in api.METHODS if m != "bits"))
    methods = {f.method for _, frames in C.streams(packed) for f in frames if f.kind == C.FRAME_SEGMENT}
    assert methods == {C.BITS_NET}
    assert tzip.decompress(packed) == data
    for m in (match, counts, bits):
        monkeypatch.setattr(m, "library", lambda: None)
    assert tzip.decompress(packed) == data


def test_a_bits_net_segment_outside_text_is_refused(tiny):
    refused_elsewhere(tiny, "bits-net", C.BITS_NET, Layout.image(1, 3))


def test_a_bits_segment_outside_text_is_refused(tiny):
    refused_elsewhere(tiny, "bits", C.BITS, Layout.image(1, 3))


def test_damaged_bits_segment_fails_cleanly():
    packed = tzip.compress(bytes(ALICE[:3000]), methods=("bits",))
    damaged_fails(packed, C.BITS)


def test_the_encoder_in_pieces_codes_the_cheapest_way_of_one_pass():
    """encode_segment takes the network's frequencies a piece of rows at a time and runs the stages
    on in place; it picks the way whose whole-segment frequencies (pipeline.way_frequencies) have
    the shortest ideal code and codes exactly those, whether that is the last stage computed or
    (here on noise) another way it codes in a second pass."""
    from tzip.codec.encoder import code_length, encode_segment
    from tzip.codec.pipeline import WAYS, way_frequencies
    from tzip.codec.rangecoder import encode_symbols

    class Network:
        cfg = ModelConfig()  # no hint slots

        def __init__(self, freqs):
            self.freqs = freqs

        def segment_frequencies(self, symbols, layout, rows, hints=None):
            return self.freqs[rows[0] : rows[0] + rows[1]].copy()

    rng = np.random.default_rng(4)
    winners = set()
    for x in (ALICE[:3000], rng.integers(0, 256, 3000, dtype=np.uint8)):
        f = network_like(x, 7)
        for ways in (("neural", "match", "context", "bits"), ("match", "bits"), ("neural", "bits"),
                     ("neural", "match", "context1", "context")):
            costs = {w: code_length(x, way_frequencies(w, x, f, Layout.text())) for w in ways}
            want = min(costs, key=lambda w: (costs[w], WAYS.index(w)))
            for piece_rows in (700, 1024, 5000):
                got = encode_segment(Network(f), x, Layout.text(), ways, piece_rows)
                assert got == (want, encode_symbols(x, way_frequencies(want, x, f, Layout.text()))), (ways, piece_rows)
            winners.add(want)
    assert "bits" in winners and winners - {"bits"}  # both paths were taken
