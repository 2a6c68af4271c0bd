"""The classical method (format.methods, id 10): the bit mixer's stages, with binary data's sparse
contexts, over a uniform distribution, without the network, each byte's bits coded one at a time
(codec/classical.py). C and the Python stages code the same bytes, the body fits its frame or the
segment is stored, it decodes
without running the network, decodes beside network-coded segments in one batch, and a text or
binary chain keeps the smaller of the two ways over its first TRIAL_BYTES and at each contest after."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import tzip
from bench.classical import zero_head
from tzip import api
from tzip.codec import chain, classical
from tzip.codec.decoder import decode_segments
from tzip.codec.encoder import chain_way, encode_segments
from tzip.codec.pipeline import way_frequencies
from tzip.codec.rangecoder import encode_symbols
from tzip.engine import native
from tzip.engine.constants import UNIFORM_FREQ
from tzip.engine.library import header
from tzip.engine.modelfile import parse
from tzip.engine.reference import IntModel
from tzip.engine.registry import get_model
from tzip.format import container as C
from tzip.format.layout import Layout
from tzip.format.methods import DEFAULT
from tzip.stages import bits, counts, match

from .conftest import DATA

ALICE = (DATA / "alice_head.txt").read_bytes()
BINARY = Layout.binary()


def records(n: int, seed: int = 7) -> bytes:
    """Binary data that context modelling codes better than zstd: a Markov chain over bytes where
    each byte has four likely successors (zstd codes literals by their order-0 frequencies)."""
    rng = np.random.default_rng(seed)
    successors = rng.integers(0, 256, (256, 4))
    out, b = bytearray(), 0
    for pick in rng.geometric(0.5, n):
        b = int(successors[b, min(pick, 4) - 1])
        out.append(b)
    return bytes(out)


def frames_of(packed: bytes) -> list[C.Frame]:
    [(_, frames)] = C.streams(packed)
    return [f for f in frames if f.kind == C.FRAME_SEGMENT]


@pytest.fixture(scope="module")
def zeroed(tiny) -> IntModel:
    """The tiny model with its output head zeroed: a uniform distribution at every position."""
    return IntModel(parse(zero_head(tiny.file).to_bytes()))


def classical_bodies(segments: list[bytes]) -> list[bytes | None]:
    """The segments coded in turn on one classical chain."""
    c = chain.Chain("classical", BINARY, max(map(len, segments)))
    return [c.code(c.add(np.frombuffer(s, dtype=np.uint8)), len(s)) for s in segments]


def test_classical_codes_its_stages_bit_by_bit_in_c_as_in_python(tiny, monkeypatch):
    data = records(5000)
    segments = [data[:2048], data[2048:4096], data[4096:]]
    native = classical_bodies(segments)
    packed = tzip.compress(data, model=tiny, modality="binary", segment_size=2048, methods=("classical",))
    assert [f.method for f in frames_of(packed)] == [C.CLASSICAL] * 3
    assert [f.body for f in frames_of(packed)] == native  # the stream is the chain's bodies
    for m in (match, counts, bits):
        monkeypatch.setattr(m, "library", lambda: None)
    assert classical_bodies(segments) == native
    d = chain.Chain("classical", BINARY, 2048)
    assert b"".join(d.decode(b, len(s)) for b, s in zip(native, segments)) == data  # the Python decoder
    monkeypatch.undo()
    assert tzip.decompress(packed, model=tiny) == data
    x = np.frombuffer(data, dtype=np.uint8)
    uniform = np.full((len(x), 256), UNIFORM_FREQ, dtype=np.int32)
    byte_coded = encode_symbols(x, way_frequencies("classical", x, uniform, BINARY))
    assert sum(map(len, native)) < 1.01 * len(byte_coded)  # the same model, coded bit by bit


def test_a_body_that_would_not_fit_its_frame_is_stored(tiny, monkeypatch):
    monkeypatch.setattr(classical, "max_coded", lambda n: 16)  # the frame's limit as the encoder sees it
    data = records(3000)
    assert classical_bodies([data]) == [None]
    packed = tzip.compress(data, model=tiny, modality="binary", segment_size=1024, methods=("classical",))
    assert [f.method for f in frames_of(packed)] == [C.STORED] * 3
    assert tzip.decompress(packed, model=tiny) == data


@pytest.mark.parametrize("data", [b"", b"\x00", bytes(5000), bytes(range(256)) * 20,
                                  np.random.default_rng(9).integers(0, 256, 6000, dtype=np.uint8).tobytes()])
def test_classical_round_trips_adversarial_data(tiny, data):
    packed = tzip.compress(data, model=tiny, modality="binary", segment_size=2048, methods=("stored", "classical"))
    assert tzip.decompress(packed, model=tiny) == data


def test_the_uniform_frequency_is_the_c_librarys():
    assert header().defines["TZIP_UNIFORM_FREQ"] == UNIFORM_FREQ


def test_a_head_zeroed_network_gives_the_bits_way_a_uniform_distribution(tiny, zeroed):
    """Method 8 under a head-zeroed model is the text-context variant of the classical way: the same
    uniform input, so on binary data the sparse contexts are all that make classical smaller."""
    data = records(5000)
    x = np.frombuffer(data, dtype=np.uint8)
    uniform = np.full((len(x), 256), UNIFORM_FREQ, dtype=np.int32)
    zeroed_bits = tzip.compress(data, model=zeroed, modality="binary", segment_size=8192, methods=("bits",))
    [frame] = frames_of(zeroed_bits)
    assert frame.body == encode_symbols(x, way_frequencies("bits", x, uniform, BINARY))


def test_a_classical_stream_decodes_without_the_network(tiny, monkeypatch):
    data = records(3000)
    packed = tzip.compress(data, model=tiny, modality="binary", segment_size=1024, methods=("classical",))

    def no_network(*args, **kwargs):
        raise AssertionError("the network ran")

    monkeypatch.setattr(type(tiny), "decoder", no_network)
    assert tzip.decompress(packed, model=tiny) == data


def test_one_batch_decodes_segments_with_and_without_the_network(tiny):
    """Independent segments of both kinds in one call: those without the network on their own."""
    segs = [np.frombuffer(records(900, seed), dtype=np.uint8) for seed in (1, 2, 3)]
    ways = ["bits", "classical", "bits"]
    coded = []
    for s, way in zip(segs, ways):
        if way == "classical":
            coded += classical_bodies([s.tobytes()])
        else:
            coded.append(encode_symbols(s, way_frequencies(way, s, tiny.segment_frequencies(s, BINARY), BINARY)))
    got = decode_segments(tiny, coded, [len(s) for s in segs], BINARY, ways)
    assert got == [s.tobytes() for s in segs]


@pytest.mark.parametrize("network_way", ["bits", "sparse"])
@pytest.mark.parametrize("modality", ["binary", "text"])
@pytest.mark.parametrize("case", ["misled network", "trained network"])
def test_a_chain_keeps_the_smaller_way_of_its_trial(case, modality, network_way, misled):
    """Within TRIAL_BYTES the stream is byte for byte the smaller of the two single-way streams:
    the classical one under a network worse than none, the network's under the shipped model on
    prose, whether the stream is binary or text (a PDF's pages are text to detection but code
    smaller without the network), with either of the network's bit mixers."""
    model, data = (misled, records(6000)) if case == "misled network" else (get_model(None), ALICE[:6000])
    sizes = {}
    for way in (network_way, "classical"):
        sizes[way] = tzip.compress(data, model=model, modality=modality, segment_size=2048,
                                   methods=("stored", "zstd", way))
    both = tzip.compress(data, model=model, modality=modality, segment_size=2048,
                         methods=("stored", "zstd", network_way, "classical"))
    winner, loser = ("classical", network_way) if case == "misled network" else (network_way, "classical")
    assert len(sizes[winner]) < len(sizes[loser])
    assert both == sizes[winner]
    assert tzip.decompress(both, model=model) == data


def test_binary_chains_take_the_network_with_binary_contexts(tiny):
    """Method 11: a binary chain's network way is method 10's stages fed the network's distribution;
    text chains keep the text contexts, and independent segments are never offered it."""
    assert chain_way(DEFAULT, BINARY) == "sparse" and chain_way(DEFAULT, Layout.text()) == "bits-net"
    assert chain_way(("bits", "classical"), BINARY) == "bits"
    assert chain_way(("sparse", "classical"), Layout.text()) == "sparse"
    data = records(6000)
    packed = tzip.compress(data, model=tiny, modality="binary", segment_size=2048, methods=("stored", "sparse"))
    assert [f.method for f in frames_of(packed)] == [C.SPARSE] * 3
    assert tzip.decompress(packed, model=tiny) == data
    c = chain.Chain("sparse", BINARY, 2048)  # the stream's bodies: the chain's frequencies range-coded
    x = np.frombuffer(data, dtype=np.uint8)
    bodies = [encode_symbols(x[t0 : t0 + 2048], c.scan(c.add(x[t0 : t0 + 2048]),
                             tiny.segment_frequencies(x[t0 : t0 + 2048], BINARY))) for t0 in (0, 2048, 4096)]
    assert [f.body for f in frames_of(packed)] == bodies
    independent = tzip.compress(data, model=tiny, modality="binary", segment_size=2048, chain=False)
    assert C.SPARSE not in {f.method for f in frames_of(independent)}
    with pytest.raises(ValueError, match="ways must be"):
        encode_segments(tiny, [data], BINARY, ("sparse",))


def test_after_the_trial_the_chain_carries_on_with_the_winner(misled, monkeypatch):
    monkeypatch.setattr(api, "TRIAL_BYTES", 2048)
    data = records(8192)
    packed = tzip.compress(data, model=misled, modality="binary", segment_size=1024,
                           methods=("stored", "zstd", "bits", "classical"))
    methods = [f.method for f in frames_of(packed)]
    assert methods == [C.CLASSICAL] * 8
    assert tzip.decompress(packed, model=misled) == data
    # the winner's chain carried on: the stream is the single-way stream of that way
    alone = tzip.compress(data, model=misled, modality="binary", segment_size=1024,
                          methods=("stored", "zstd", "classical"))
    assert packed == alone


def chains_made(monkeypatch) -> list[str]:
    """The ways of the chains the compressor makes, in order (api.Chain watched)."""
    made: list[str] = []

    class Watched(chain.Chain):
        def __init__(self, way, *args):
            made.append(way)
            super().__init__(way, *args)

    monkeypatch.setattr(api, "Chain", Watched)
    return made


def test_a_chain_after_a_stored_segment_takes_the_tried_way(misled, monkeypatch):
    monkeypatch.setattr(api, "TRIAL_BYTES", 1024)
    made = chains_made(monkeypatch)
    noise = np.random.default_rng(5).integers(0, 256, 1024, dtype=np.uint8).tobytes()
    data = records(2048) + noise + records(2048, seed=8)
    packed = tzip.compress(data, model=misled, modality="binary", segment_size=1024,
                           methods=("stored", "zstd", "bits", "classical"))
    assert [f.method for f in frames_of(packed)] == [C.CLASSICAL] * 2 + [C.STORED] + [C.CLASSICAL] * 2
    assert made == ["bits", "classical", "classical"]  # one trial, then the chain after the noise
    assert tzip.decompress(packed, model=misled) == data


def test_a_chain_after_a_full_one_tries_again(misled, monkeypatch):
    monkeypatch.setattr(api, "TRIAL_BYTES", 1024)
    monkeypatch.setattr(chain, "CHAIN_LIMIT", 2048)  # the format's rule, on both sides of this test
    made = chains_made(monkeypatch)
    data = records(5000)
    packed = tzip.compress(data, model=misled, modality="binary", segment_size=1024,
                           methods=("stored", "zstd", "bits", "classical"))
    assert made == ["bits", "classical"] * 3  # a trial at each chain of 2048 bytes
    assert [f.method for f in frames_of(packed)] == [C.CLASSICAL] * 5
    assert tzip.decompress(packed, model=misled) == data


def test_a_binary_chain_tries_both_bit_mixers_with_the_network(misled, monkeypatch):
    """A chain's trial codes its way, method 8 and method 10: 11, 8 and 10 for binary data, 14, 8 and 10
    for text."""
    monkeypatch.setattr(api, "TRIAL_BYTES", 1024)
    made = chains_made(monkeypatch)
    data = records(2048)
    packed = tzip.compress(data, model=misled, modality="binary", segment_size=1024)
    assert made == ["sparse", "bits", "classical"]
    assert tzip.decompress(packed, model=misled) == data
    made.clear()
    tzip.compress(ALICE[:2048], model=misled, modality="text", segment_size=1024)
    assert made == ["bits-net", "bits", "classical"]


def test_text_streams_do_not_try_the_classical_way(tiny):
    packed = tzip.compress(ALICE[:3000], model=tiny, segment_size=1024)
    assert {f.method for f in frames_of(packed)} <= {C.BITS_NET, C.BITS, C.STORED, C.ZSTD}
    independent = tzip.compress(records(3000), model=tiny, modality="binary", segment_size=1024, chain=False)
    assert C.CLASSICAL not in {f.method for f in frames_of(independent)}
    assert tzip.decompress(independent, model=tiny) == records(3000)


def test_a_contest_takes_a_chain_off_a_network_that_loses(misled, monkeypatch):
    """A chain whose trial kept the network (forced here) codes every CONTEST_EVERY-th segment also
    without it, from a fork of its state, keeps the smaller, and carries on with the winner's way."""
    monkeypatch.setattr(api, "TRIAL_BYTES", 1024)
    monkeypatch.setattr(api.TzipCompressor, "_trial_ways", lambda self, first: [self.chain_way])
    monkeypatch.setattr(api, "CONTEST_EVERY", 2)
    data, ways = records(8192), ("stored", "sparse", "classical")
    packed = tzip.compress(data, model=misled, modality="binary", segment_size=1024, methods=ways)
    # the trial's segment, one carried on, the contest's (segment 3 of the chain), then the winner's way
    assert [f.method for f in frames_of(packed)] == [C.SPARSE] * 2 + [C.CLASSICAL] * 6
    assert tzip.decompress(packed, model=misled) == data
    monkeypatch.setattr(api, "CONTEST_EVERY", 0)
    stuck = tzip.compress(data, model=misled, modality="binary", segment_size=1024, methods=ways)
    assert [f.method for f in frames_of(stuck)] == [C.SPARSE] * 8
    assert len(packed) < len(stuck)


def test_a_contest_puts_a_chain_back_on_a_network_that_wins(monkeypatch):
    """The other way round: a text chain whose trial kept the classical way (forced here) takes the
    shipped network's way again at its first contest, on prose, where the network gains."""
    monkeypatch.setattr(api, "TRIAL_BYTES", 1024)
    monkeypatch.setattr(api.TzipCompressor, "_trial_ways", lambda self, first: ["classical"])
    monkeypatch.setattr(api, "CONTEST_EVERY", 2)
    data = ALICE[:4096]
    packed = tzip.compress(data, modality="text", segment_size=1024, methods=("stored", "bits", "classical"))
    assert [f.method for f in frames_of(packed)] == [C.CLASSICAL] * 2 + [C.BITS] * 2
    assert tzip.decompress(packed) == data


def test_a_trial_stops_a_way_with_the_network_far_behind(misled, monkeypatch):
    """After each of the trial's segments, a way with the network more than TRIAL_MARGIN behind the
    smallest stops (its scans cost as much as the chain's own); the classical way, the floor, runs
    to the trial's end. A way that far behind does not come back here: the stream is the same."""
    monkeypatch.setattr(api, "TRIAL_BYTES", 4096)
    scanned: Counter[str] = Counter()  # rows scanned with the network, by way
    scan_back = chain.Chain.scan_back

    def watched(self, t0, freqs, net=None):
        scanned[self.running] += len(freqs)
        return scan_back(self, t0, freqs, net)

    monkeypatch.setattr(chain.Chain, "scan_back", watched)
    data = records(4096)
    cut = tzip.compress(data, model=misled, modality="binary", segment_size=1024)
    assert scanned == {"sparse": 1024, "bits": 1024}  # the trial's first segment
    assert [f.method for f in frames_of(cut)] == [C.CLASSICAL] * 4
    scanned.clear()
    monkeypatch.setattr(api, "TRIAL_MARGIN", float("inf"))
    assert tzip.compress(data, model=misled, modality="binary", segment_size=1024) == cut
    assert scanned == {"sparse": 4096, "bits": 4096}
    assert tzip.decompress(cut, model=misled) == data


@pytest.mark.skipif(not native.available(), reason="the C library is unavailable")
@pytest.mark.parametrize("rows_at_once", [1, 300, 1 << 12])
def test_the_pipelined_classical_encoder_codes_what_the_one_call_codes(rows_at_once, monkeypatch):
    """Chain.code with a thread ahead (tzip_classical_rows there, tzip_classical_code here, the coder
    carried between calls) writes the bodies tzip_classical_encode writes, segment after segment of
    one chain, also where a body does not fit its frame (here: where it is longer than the segment;
    the random bytes and the one byte, None both ways)."""
    monkeypatch.setattr(classical, "max_coded", lambda n: n)
    segments = [records(1500), records(700, seed=3), np.random.default_rng(2).bytes(900), records(1, seed=4)]
    alone, piped = (chain.Chain("classical", BINARY, 1500) for _ in range(2))
    bodies = []
    with ThreadPoolExecutor(1) as ahead:
        for s in segments:
            x = np.frombuffer(s, dtype=np.uint8)
            bodies.append(alone.code(alone.add(x), len(x)))
            assert piped.code(piped.add(x), len(x), ahead, rows_at_once) == bodies[-1]
    assert [b is None for b in bodies] == [False, False, True, True]


def test_only_a_short_text_chain_also_tries_method_8(tiny, monkeypatch):
    """A text chain's trial codes method 8 beside method 14 where its first segment is under
    SHORT_TEXT, and not from SHORT_TEXT on (a third way costs speed where method 14 is the smaller)."""
    monkeypatch.setattr(api, "SHORT_TEXT", 2048)
    made = chains_made(monkeypatch)
    text = (ALICE * 2)[:4096]
    tzip.compress(text[:2047], model=tiny, modality="text")
    assert made == ["bits-net", "bits", "classical"]
    made.clear()
    packed = tzip.compress(text, model=tiny, modality="text", segment_size=2048)
    assert made[:2] == ["bits-net", "classical"] and "bits" not in made
    assert tzip.decompress(packed, model=tiny) == text


def test_a_forked_method_14_chain_codes_as_the_original(tiny):
    """A fork of a chain running method 14 (a contest's rival) has the mixer's state and kept row as the
    original had them: the same segment scanned on both gives the same rows."""
    from .test_match import network_like

    segs = [np.frombuffer(ALICE[i : i + 1500], dtype=np.uint8) for i in (0, 1500)]
    c = chain.Chain("bits-net", Layout.text(), 1500)
    c.scan(c.add(segs[0]), network_like(segs[0], 0))
    twin = c.fork()
    start = c.add(segs[1])
    f = network_like(segs[1], 1)
    assert np.array_equal(c.scan(start, f.copy()), twin.scan(start, f.copy()))
