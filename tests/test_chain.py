"""Chained streams (tzip/codec/chain.py): the adaptive stages carry on from segment to segment. A fresh
chain is an independent segment, C and Python carry the same state, the rule that ends a chain is
the same on both sides, and chained streams round-trip and fail cleanly."""

from __future__ import annotations

import numpy as np
import pytest

import tzip
from tzip.codec import chain
from tzip.codec.encoder import code_length
from tzip.codec.pipeline import way_frequencies
from tzip.engine import native
from tzip.errors import TzipError
from tzip.format import container as C
from tzip.format.layout import Layout
from tzip.format.methods import DEFAULT as METHODS
from tzip.format.methods import method
from tzip.stages import bits, counts, match

from .conftest import DATA
from .test_match import network_like

ALICE = (DATA / "alice_head.txt").read_bytes()
TEXT = Layout.text()
needs_c = pytest.mark.skipif(not native.available(), reason="the C library is unavailable")


def scan_segment(c: chain.Chain, symbols: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """A segment's bytes onto the chain, then its rows through the chain's stages in one piece."""
    return c.scan(c.add(symbols), freqs)


# what these tests watch is the chain: LZMA2 over a block (codec/floor.py) beats the untrained tiny model
NO_FLOOR = tuple(m for m in METHODS if m != "lzma")


def methods_of(packed: bytes) -> list[int]:
    """The method of each segment frame of a one-stream container."""
    [(_, frames)] = C.streams(packed)
    return [f.method for f in frames if f.kind == C.FRAME_SEGMENT]


@pytest.mark.parametrize("way", ["match", "context", "bits"])
def test_a_fresh_chain_codes_a_segment_as_it_would_alone(way):
    symbols = np.frombuffer(ALICE[:3000], dtype=np.uint8)
    freqs = network_like(symbols, 3)
    alone = way_frequencies(way, symbols, freqs, TEXT)
    assert np.array_equal(scan_segment(chain.Chain(way, TEXT, 4096), symbols, freqs.copy()), alone)
    pieces = chain.Chain(way, TEXT, 4096)  # rows in pieces: the states carry on from one to the next
    start = pieces.add(symbols)
    got = np.concatenate([pieces.scan(start + t0, freqs[t0 : t0 + 1100].copy()) for t0 in range(0, 3000, 1100)])
    assert np.array_equal(got, alone)


@pytest.mark.parametrize("way,layout", [("match", TEXT), ("context", TEXT), ("bits", TEXT),
                                        ("sparse", Layout.binary()), ("bits-net", TEXT)])
@pytest.mark.parametrize("engine", ["c", "python"])
def test_front_and_back_scans_ahead_of_each_other_equal_one_scan(engine, way, layout, monkeypatch):
    """Chain.scan_front then scan_back (compression's pipeline: the front stages run pieces ahead of
    the last stage) give what one scan gives, over two chained segments, the second coded on the
    states the first left: each stage reads only its own state and the rows before it (and method
    14's last stage the network's rows, handed to scan_back beside the rows the front rewrote)."""
    if engine == "python":
        for m in (match, counts, bits):
            monkeypatch.setattr(m, "library", lambda: None)
    elif not native.available():
        pytest.skip("no C compiler")
    segs = [np.frombuffer(ALICE[i : i + 1500], dtype=np.uint8) for i in (0, 1500)]
    freqs = [network_like(s, i) for i, s in enumerate(segs)]
    whole = scan_ways(chain.Chain(way, layout, 1500), segs, [way, way], freqs)
    split, got = chain.Chain(way, layout, 1500), []
    for s, f in zip(segs, freqs):
        start, rows = split.add(s), f.copy()
        pieces = [(t0, rows[t0 : t0 + 400]) for t0 in range(0, len(s), 400)]
        split.scan_front(start, pieces[0][1])
        for (t0, piece), ahead in zip(pieces, [*pieces[1:], None]):
            if ahead is not None:  # the next piece's front stages before this piece's last stage
                split.scan_front(start + ahead[0], ahead[1])
            split.scan_back(start + t0, piece, f[t0 : t0 + len(piece)] if split.reads_network else None)
        got.append(rows)
    assert all(np.array_equal(w, g) for w, g in zip(whole, got))


def scan_ways(c: chain.Chain, segs: list[np.ndarray], ways: list[str], freqs: list[np.ndarray]) -> list[np.ndarray]:
    """Each segment onto the chain with its way, its rows scanned in one piece."""
    out = []
    for s, w, f in zip(segs, ways, freqs):
        c.begin(w)
        out.append(scan_segment(c, s, f.copy()))
    return out


@pytest.mark.parametrize("ways,layout", [(["bits"] * 3, TEXT), (["sparse"] * 3, Layout.binary()),
                                         (["sparse", "bits", "sparse"], Layout.binary())])
@pytest.mark.parametrize("engine", ["c", "python"])
def test_chained_scan_equals_decoding_steps_and_the_reference(engine, ways, layout, monkeypatch):
    """Three segments through one chain: compression's scan (C) gives what the Python stages give
    and what decoding's steps on a chain of its own compute, position by position; also where the
    middle one, text between binary records, switches to method 8's text contexts."""
    from .test_classical_method import records

    if engine == "python":
        for m in (match, counts, bits):
            monkeypatch.setattr(m, "library", lambda: None)
    elif not native.available():
        pytest.skip("no C compiler")
    switching = len(set(ways)) > 1
    data = records(700) + ALICE[:700] + records(700, seed=8) if switching else ALICE[:2100]
    segs = [np.frombuffer(data[i : i + 700], dtype=np.uint8) for i in (0, 700, 1400)]
    freqs = [network_like(s, i) for i, s in enumerate(segs)]
    scanned = chain.Chain(ways[0], layout, 700)
    got = scan_ways(scanned, segs, ways, freqs)
    assert scanned.length == 2100 and bytes(scanned.history[0, :2100]) == data
    stepped = chain.Chain(ways[0], layout, 700)
    for s, w, f, g in zip(segs, ways, freqs, got):
        stepped.begin(w)
        for t in range(len(s)):
            row = stepped.stages.adjust(f[t : t + 1], stepped.length + t)
            assert np.array_equal(row[0], g[t])
            stepped.history[0, stepped.length + t] = s[t]
            stepped.stages.update(stepped.length + t)
        stepped.length += len(s)
    if engine == "c":  # the C stages' frequencies equal the Python reference's on the same chain
        for m in (match, counts, bits):
            monkeypatch.setattr(m, "library", lambda: None)
        reference = scan_ways(chain.Chain(ways[0], layout, 700), segs, ways, freqs)
        assert all(np.array_equal(r, g) for r, g in zip(reference, got))
    if not switching:  # the second segment gains from the first: a chain is not a fresh start
        alone = way_frequencies(ways[1], segs[1], freqs[1], layout)
        assert code_length(segs[1], got[1]) < code_length(segs[1], alone)


def test_chained_streams_round_trip_and_are_smaller(tiny):
    data = ALICE * 2
    packed = tzip.compress(data, model=tiny, segment_size=1024, methods=NO_FLOOR)
    alone = tzip.compress(data, model=tiny, segment_size=1024, chain=False, methods=NO_FLOOR)
    assert C.Header.unpack(packed[: C.HEADER_SIZE]).chained
    assert not C.Header.unpack(alone[: C.HEADER_SIZE]).chained
    assert set(methods_of(packed)) in ({C.BITS_NET}, {C.BITS})  # text chains' way, or method 8 after the trial
    assert tzip.decompress(packed, model=tiny) == data == tzip.decompress(alone, model=tiny)
    assert len(packed) < 0.9 * len(alone)  # the repeat of ALICE is far back in the chain, not in the segment


def test_what_chains_by_default(tiny, samples):
    chained = {key: C.Header.unpack(tzip.compress(samples[key], model=tiny)[: C.HEADER_SIZE]).chained
               for key in ("text", "ppm", "wav_mono", "random")}
    assert chained == {"text": True, "ppm": False, "wav_mono": False, "random": True}  # random bytes are binary
    forced = tzip.compress(samples["ppm"], model=tiny, chain=True)  # the pixel model cannot chain
    assert not C.Header.unpack(forced[: C.HEADER_SIZE]).chained
    for methods, way in [(("context", "match"), C.CONTEXT), (("match", "neural"), C.MATCH)]:
        packed = tzip.compress(ALICE[:3000], model=tiny, segment_size=1024, methods=methods)
        assert set(methods_of(packed)) == {way} and tzip.decompress(packed, model=tiny) == ALICE[:3000]
    packed = tzip.compress(ALICE[:3000], model=tiny, methods=("neural", "stored"))
    assert not C.Header.unpack(packed[: C.HEADER_SIZE]).chained


def test_a_stored_segment_ends_the_chain(tiny):
    """Noise between text is stored, and the next text segment starts a new chain on both sides."""
    noise = np.random.default_rng(1).integers(0, 256, 1024, dtype=np.uint8).tobytes()
    data = ALICE[:2048] + noise + ALICE[:2048]
    packed = tzip.compress(data, model=tiny, segment_size=1024, modality="text", methods=NO_FLOOR)
    way = methods_of(packed)[0]  # the trial's winner: a way with the untrained network or the classical one
    assert way in (C.BITS_NET, C.BITS, C.CLASSICAL) and methods_of(packed) == [way, way, C.STORED, way, way]
    assert tzip.decompress(packed, model=tiny) == data
    # the second half codes exactly as a stream of its own: its chain started afresh
    again = tzip.compress(ALICE[:2048], model=tiny, segment_size=1024, modality="text", methods=NO_FLOOR)
    assert packed.endswith(again[C.HEADER_SIZE : -1 - C.END.size] + packed[-1 - C.END.size :])


def test_the_chain_limit_is_part_of_the_format(tiny, monkeypatch):
    """Chains end once they hold CHAIN_LIMIT bytes: a stream made with another limit decodes only
    with it (the rule is the format's, not the encoder's choice)."""
    data = ALICE[:4096]
    unlimited = tzip.compress(data, model=tiny, segment_size=1024, methods=NO_FLOOR)
    monkeypatch.setattr(chain, "CHAIN_LIMIT", 2048)
    limited = tzip.compress(data, model=tiny, segment_size=1024, methods=NO_FLOOR)
    assert limited != unlimited
    assert tzip.decompress(limited, model=tiny) == data
    monkeypatch.undo()
    with pytest.raises(TzipError, match="corrupted"):
        tzip.decompress(limited, model=tiny)
    assert tzip.decompress(unlimited, model=tiny) == data


def test_damaged_chained_streams_fail_cleanly(tiny):
    packed = tzip.compress(ALICE[:3000], model=tiny, segment_size=1024)
    frames = (C.FRAME_SEGMENT + bytes([C.BITS]), C.FRAME_SEGMENT + bytes([C.BITS_NET]))
    at = [i for i in range(len(packed)) if packed[i : i + 2] in frames][1]
    for pos in (at + 20, at + 40, len(packed) - 30):
        bad = bytearray(packed)
        bad[pos] ^= 0x10
        with pytest.raises(TzipError):
            tzip.decompress(bytes(bad), model=tiny)
    for n in (C.HEADER_SIZE + 5, at, at + 30, len(packed) - 1):
        with pytest.raises(TzipError):
            tzip.decompress(packed[:n], model=tiny)
    unchained = bytearray(packed)
    unchained[5] &= ~C.FLAG_CHAINED  # the header's CRC no longer matches
    with pytest.raises(TzipError, match="header checksum"):
        tzip.decompress(bytes(unchained), model=tiny)


def test_a_chain_runs_each_segments_own_stages():
    """The bit mixer's methods (8, 10, 11) share a chain, each segment running its own method's
    stages; a way of another family cannot carry it on."""
    c = chain.Chain("sparse", Layout.binary(), 1024)
    classical = chain.Chain("classical", Layout.binary(), 8)
    assert [s.KIND for s in c.stages.stages] == [s.KIND for s in classical.stages.stages]
    assert c.continues("bits") and c.continues("classical") and not c.continues("context")
    c.begin("bits")
    assert set(c.parts) == {"match", "counts", "sparse", "bits"} and len(c.stages.stages) == 3
    with pytest.raises(ValueError, match="does not carry on"):
        c.begin("context")


def test_a_binary_chain_codes_its_text_segments_as_text_where_the_probe_says(tiny, monkeypatch):
    """A binary stream's segment that looks like text is coded with method 8 within the chain where
    the probe finds the text contexts smaller than the chain's way, else with the chain's way; the
    chain carries on across a switch (the decoder makes one chain)."""
    from tzip import api

    from .test_classical_method import records

    made: list[str] = []

    class Watched(chain.Chain):
        def __init__(self, way, *args):
            made.append(way)
            super().__init__(way, *args)

    verdicts: list[dict[str, bool]] = []
    probe = api.TzipCompressor._text_contexts_win

    def watched_probe(self, *args, **kwargs):
        verdicts.append(probe(self, *args, **kwargs))
        return {way: force if force is not None else wins for way, wins in verdicts[-1].items()}

    monkeypatch.setattr(api, "Chain", Watched)
    monkeypatch.setattr(api.TzipCompressor, "_text_contexts_win", watched_probe)
    monkeypatch.setattr(api, "TRIAL_BYTES", 1024)
    monkeypatch.setattr(api, "CONTEST_EVERY", 0)  # the chain keeps its way (contests: test_classical_method)
    data = records(2048) + ALICE[:1024] + records(2048, seed=8)
    for force in (True, False, None):
        verdicts.clear()
        packed = tzip.compress(data, model=tiny, modality="binary", segment_size=1024, methods=NO_FLOOR)
        got = methods_of(packed)
        assert len(verdicts) == 1 and set(got) <= {C.BITS, C.SPARSE, C.CLASSICAL}  # one segment looks like text
        [way] = verdicts[0]  # the chain's way, which the other segments take
        switched = force if force is not None else verdicts[0][way]
        assert got == [method(way).id] * 2 + [C.BITS if switched else method(way).id] + [method(way).id] * 2
        made.clear()
        assert tzip.decompress(packed, model=tiny) == data
        assert made == [way]  # the decoder's one chain: the switch carried it on


@pytest.mark.parametrize("engine", ["c", "python"])
def test_a_forked_chain_learns_apart_from_its_original(engine, monkeypatch):
    """Chain.fork: the copy and the original code the next segment each its own way and carry on
    exactly as chains that never forked would (C clones the states, Python copies them)."""
    from .test_classical_method import records

    if engine == "python":
        for m in (match, counts, bits):
            monkeypatch.setattr(m, "library", lambda: None)
    elif not native.available():
        pytest.skip("no C compiler")
    layout = Layout.binary()
    segs = [np.frombuffer(records(600, seed), dtype=np.uint8) for seed in (1, 2, 3, 4)]
    freqs = [network_like(s, i) for i, s in enumerate(segs)]
    original = chain.Chain("sparse", layout, 600)
    scan_ways(original, segs[:2], ["sparse"] * 2, freqs[:2])
    twin = original.fork()
    assert twin.length == original.length == 1200 and twin.segments == original.segments == 2
    got = {"twin": scan_ways(twin, segs[2:], ["bits", "sparse"], freqs[2:]),
           "original": scan_ways(original, segs[2:], ["sparse", "sparse"], freqs[2:])}
    for name, ways in (("twin", ["bits", "sparse"]), ("original", ["sparse", "sparse"])):
        alone = scan_ways(chain.Chain("sparse", layout, 600), segs, ["sparse", "sparse", *ways], freqs)
        assert all(np.array_equal(a, g) for a, g in zip(alone[2:], got[name]))
    assert not np.array_equal(got["twin"][1], got["original"][1])  # the two learnt different things


@needs_c
def test_a_stage_without_a_clone_refuses_to_fork_and_keeps_its_state():
    """The pixel model does not chain, so its C library has no clone: fork raises, and the batch's
    own states are untouched (the failed copy frees nothing of theirs)."""
    from tzip.stages import pixels

    layout = Layout.image(1, 64)
    hist = np.zeros((1, 4096), dtype=np.uint8)
    batch = pixels.PixelsBatch([True], hist, layout)
    with pytest.raises(AttributeError):
        batch.fork()
    row = batch.adjust(np.full((1, 256), 256, dtype=np.int32), np.ones(1, dtype=bool), 0)
    assert row.sum() == 1 << 16
    batch.update(0)
