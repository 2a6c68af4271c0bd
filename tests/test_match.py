"""The match and context-count models: C and Python give the same integers, compression and
decompression agree, and the container's "match"/"context" segments round-trip and fail cleanly
when damaged."""

from __future__ import annotations

import numpy as np
import pytest

import tzip
from tzip.codec.decoder import decode_segments
from tzip.codec.encoder import SEGMENT_WAYS, code_length, encode_segments
from tzip.engine import native
from tzip.errors import TzipError
from tzip.format import container as C
from tzip.format.layout import Layout
from tzip.format.methods import method
from tzip.stages import counts, match
from tzip.stages.protocol import StagesInTurn

from .conftest import DATA

needs_c = pytest.mark.skipif(not native.available(), reason="the C library is unavailable")


def network_like(symbols: np.ndarray, seed: int = 0) -> np.ndarray:
    """Valid frequency rows (each >= 1, total 2^16) of varied sharpness, some peaked at the true byte."""
    rng = np.random.default_rng(seed)
    t = len(symbols)
    raw = rng.gamma(0.3, size=(t, 256)) * rng.choice([1, 30, 1000], size=(t, 1))
    raw[np.arange(t), symbols] += rng.choice([0.0, 5.0, 500.0], size=t)
    f = 1 + np.floor(raw / raw.sum(1, keepdims=True) * (match.ONE - 256 - 300)).astype(np.int64)
    f[:, 0] += match.ONE - f.sum(1)
    assert (f >= 1).all() and (f.sum(1) == match.ONE).all()
    return f.astype(np.int32)


def texts() -> list[np.ndarray]:
    alice = np.frombuffer((DATA / "alice_head.txt").read_bytes()[:6000], dtype=np.uint8)
    rng = np.random.default_rng(1)
    return [alice, np.frombuffer(b"abcd" * 700 + b"abce" * 300, dtype=np.uint8),
            rng.integers(0, 256, 3000, dtype=np.uint8), np.zeros(5000, dtype=np.uint8), alice[:3]]


@pytest.fixture
def python_only(monkeypatch):
    monkeypatch.setattr(match, "library", lambda: None)
    monkeypatch.setattr(counts, "library", lambda: None)


STAGE_CONFIG = {"counts": counts.CONTEXT, "counts1": counts.CONTEXT1}
NETWORK_WAYS = tuple(w for w in SEGMENT_WAYS if method(w).network)  # an independent segment's, with the network


def reference(symbols: np.ndarray, freqs: np.ndarray, stage: str = "match") -> np.ndarray:
    out = freqs.copy()
    s = match.new_states(1)[0] if stage == "match" else counts.SegmentCounts(STAGE_CONFIG[stage])
    for t in range(len(symbols)):
        if stage == "match":
            match.predict(s, symbols, out[t])
            match.update(s, symbols, t)
        else:
            s.predict(symbols, t, out[t])
            s.update(symbols, t)
    return out


@needs_c
@pytest.mark.parametrize("stage", ["match", "counts", "counts1"])
@pytest.mark.parametrize("which", range(5))
def test_c_scan_equals_python(which, stage):
    x = texts()[which]
    f = network_like(x, which)
    got = match.apply(x, f) if stage == "match" else counts.apply(x, f, STAGE_CONFIG[stage])
    assert np.array_equal(got, reference(x, f, stage))
    assert native.library().tzip_match_state_size() == match.STATE_SIZE  # the state layout both read
    assert (got >= 1).all() and (got.sum(1) == match.ONE).all()


def test_counts_halve_and_follow_change():
    """Past the count limit the statistics halve, and a context's new successor takes over."""
    x = np.frombuffer(b"ab" * 600 + b"ac" * 600, dtype=np.uint8)
    flat = np.full((len(x), 256), match.ONE // 256, dtype=np.int32)
    got = counts.apply(x, flat)
    assert np.array_equal(got, reference(x, flat, "counts"))
    assert code_length(x[-200:], got[-200:]) < 0.1 * code_length(x[-200:], flat[-200:])


def test_rescaling_keeps_a_valid_distribution_and_learns_repeats():
    x = np.frombuffer(b"the cat sat on the mat. " * 200, dtype=np.uint8)
    flat = np.full((len(x), 256), match.ONE // 256, dtype=np.int32)
    got = match.apply(x, flat)
    assert (got >= 1).all() and (got.sum(1) == match.ONE).all()
    # a flat network spends 8 bits a byte; once the repeats are found the match model spends far less
    assert code_length(x, flat) == pytest.approx(8 * len(x))
    assert code_length(x[2000:], got[2000:]) < 0.05 * 8 * (len(x) - 2000)


def test_no_match_leaves_frequencies_alone():
    x = np.arange(200, dtype=np.uint8)  # no 4-byte context repeats
    f = network_like(x)
    assert np.array_equal(match.apply(x, f), f)


def lock_step(segs: list[np.ndarray], freqs: list[np.ndarray], stages: list, hist: np.ndarray) -> list[np.ndarray]:
    """Each segment's frequencies as the decoder's batch of stages computes them, step by step."""
    lengths = np.array([len(x) for x in segs])
    got = [np.zeros_like(f) for f in freqs]
    run = StagesInTurn(stages)
    for t in range(hist.shape[1]):
        active = lengths > t
        run.set_active(active)
        step = np.zeros((len(segs), 256), dtype=np.int32)
        for i in np.flatnonzero(active):
            step[i] = freqs[i][t]
        step = run.adjust(step, t)
        for i in np.flatnonzero(active):
            got[i][t] = step[i]
            hist[i, t] = segs[i][t]
        run.update(t)
    return got


@pytest.mark.parametrize("engine", ["c", "python"])
def test_batch_steps_equal_whole_segment_scan(engine, monkeypatch):
    """What decompression computes step by step (a batch of unequal segments in different ways)
    is what compression computed over each whole segment."""
    if engine == "python":
        monkeypatch.setattr(match, "library", lambda: None)
        monkeypatch.setattr(counts, "library", lambda: None)
    elif not native.available():
        pytest.skip("no C compiler")
    segs = [x[:1500] for x in texts()]
    ways = ["context", "match", "neural", "context1", "context"]
    freqs = [network_like(x, i) for i, x in enumerate(segs)]
    t_len = max(map(len, segs))
    hist = np.zeros((len(segs), t_len), dtype=np.uint8)
    stages = [match.MatchBatch([w != "neural" for w in ways], hist),
              counts.CountsBatch([w == "context" for w in ways], hist),
              counts.CountsBatch([w == "context1" for w in ways], hist, counts.CONTEXT1)]
    got = lock_step(segs, freqs, stages, hist)
    for x, f, g, w in zip(segs, freqs, got, ways):
        want = f if w == "neural" else reference(x, f)
        stage = {"context": "counts", "context1": "counts1"}.get(w)
        assert np.array_equal(g, reference(x, want, stage) if stage else want)


def test_coder_round_trip_with_mixed_methods(tiny):
    segs = [bytes(x[:700]) for x in texts()] + [b""]
    lay = Layout.text()
    for ways in (("neural",), ("match",), ("context",), ("context1",), ("neural", "match"), NETWORK_WAYS):
        coded = encode_segments(tiny, segs, lay, ways)
        assert {w for w, _ in coded} <= set(ways)
        back = decode_segments(tiny, [c for _, c in coded], [len(s) for s in segs], lay, [w for w, _ in coded])
        assert back == segs


def test_coder_keeps_the_shortest_coding(tiny):
    repeats = (DATA / "alice_head.txt").read_bytes()[:800] * 4
    coded = {ways: encode_segments(tiny, [repeats], Layout.text(), ways)[0]
             for ways in (*((w,) for w in NETWORK_WAYS), NETWORK_WAYS)}
    assert len(coded[("match",)][1]) < 0.6 * len(coded[("neural",)][1])
    way, chosen = coded[NETWORK_WAYS]
    assert way != "neural" and chosen == coded[(way,)][1]
    assert len(chosen) <= min(len(coded[(w,)][1]) for w in NETWORK_WAYS) + 8  # chosen by ideal code length


def test_api_round_trip_and_methods(tiny):
    text = (DATA / "alice_head.txt").read_bytes()
    for data in (b"", b"x", text, text * 3, bytes(range(256)) * 40):
        for methods in (("match",), ("context",), ("neural", "match"), tzip.api.METHODS):
            assert tzip.decompress(tzip.compress(data, model=tiny, segment_size=4096, methods=methods),
                                   model=tiny) == data


@pytest.mark.parametrize("method", ["match", "context1", "context"])
def test_python_fallback_round_trip(tiny, python_only, method):
    data = (DATA / "alice_head.txt").read_bytes()[:3000] * 2
    packed = tzip.compress(data, model=tiny, segment_size=2048, methods=(method,))
    assert tzip.decompress(packed, model=tiny) == data


@pytest.mark.parametrize("method", [C.MATCH, C.CONTEXT1, C.CONTEXT])
def test_damaged_segment_fails_cleanly(tiny, method):
    data = (DATA / "alice_head.txt").read_bytes()[:2000] * 2
    packed = bytearray(tzip.compress(data, model=tiny, segment_size=4096, methods=(C.METHOD_NAMES[method],)))
    first = C.HEADER_SIZE
    assert packed[first : first + 2] == C.FRAME_SEGMENT + bytes([method])
    body = first + 1 + C.SEGMENT.size
    packed[body + 10] ^= 0xFF
    with pytest.raises(TzipError, match="corrupted"):
        tzip.decompress(bytes(packed), model=tiny)
    plain = bytearray(tzip.compress(data, model=tiny, segment_size=4096, methods=(C.METHOD_NAMES[method],)))
    plain[first + 1] = C.NEURAL  # decoding it the wrong way must not pass
    with pytest.raises(TzipError, match="corrupted"):
        tzip.decompress(bytes(plain), model=tiny)


def test_worker_processes_code_the_same_ways(tiny):
    """Pooled compression picks the same way per segment and decodes in workers to the same bytes."""
    data = (DATA / "alice_head.txt").read_bytes()[:3000] * 3 + bytes(range(256)) * 8
    ways = ("neural", "match", "context")
    alone = tzip.compress(data, model=tiny, segment_size=1024, methods=ways, workers=1)
    pooled = tzip.compress(data, model=tiny, segment_size=1024, methods=ways, workers=2)
    assert pooled == alone
    methods = {f.method for _, frames in C.streams(alone) for f in frames if f.kind == C.FRAME_SEGMENT}
    assert methods & {C.MATCH, C.CONTEXT}  # the adaptive stages ran in the workers
    assert tzip.decompress(pooled, model=tiny, workers=2) == data


def test_counts_config_is_checked_and_beta_follows_what_a_context_saw():
    with pytest.raises(ValueError):
        counts.Config((1, 2), counts.CONTEXT.beta)  # a table per order
    with pytest.raises(ValueError):
        counts.Config.flat((2,), (0,))
    assert counts.CONTEXT1 == counts.Config.flat((2, 3, 4), (256, 64, 16))
    # a context that saw one byte again and again is trusted more than one that saw many
    beta = counts.CONTEXT.beta[3]
    assert beta[5][0] < beta[5][3]
