"""Range coding of segments with the engine's integer frequencies (constriction).

Each segment is its own range-coder stream. Frequencies reach constriction as exact integers
(in float32, which holds them exactly): constriction's Categorical(perfect=False) turns them
into its fixed-point model by a deterministic integer-exact procedure, identically on encode
and decode, so no float computed by us ever decides a symbol.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import constriction
import numpy as np

from . import bits, counts, match, native, pixels, samples
from .container import CODED, METHOD_NAMES
from .context import Layout
from .engine import FREQ_BITS, IntModel

if TYPE_CHECKING:
    from .chain import Chain

_FAMILY = constriction.stream.model.Categorical(perfect=False)


class CoderError(ValueError):
    pass


ENCODE_ROWS = 4096  # rows handed to constriction at a time (a float32 copy of all would be 64 MB a segment)


def encode_symbols(symbols: np.ndarray, freqs: np.ndarray | None) -> bytes:
    enc = constriction.stream.queue.RangeEncoder()
    for i in range(0, len(symbols), ENCODE_ROWS):
        rows = slice(i, i + ENCODE_ROWS)
        enc.encode(symbols[rows].astype(np.int32), _FAMILY, freqs[rows].astype(np.float32))
    return enc.get_compressed().astype("<u4").tobytes()


# The range-coded container methods by name: the network alone ("neural"), + the match model
# ("match"), + the match model and the context counts ("context"; "context1" its first version),
# + all of those and the pixel model, mixed last ("pixels", image layouts only), or the match
# model and the sample model ("samples", 16-bit PCM layouts only: counts gain audio 0.1 %), or
# the context counts' frequencies refined by the bit mixer ("bits", text and binary layouts).
WAYS = tuple(METHOD_NAMES[m] for m in CODED)
COUNTED = ("context1", "context")  # the ways that blend in context counts (counts.config)
MIXED = {"pixels": pixels, "samples": samples, "bits": bits}  # the last stages, each for its own layouts
MIXED_BATCH = {"pixels": pixels.PixelsBatch, "samples": samples.SamplesBatch,  # ...and their decode batches
               "bits": bits.BitsBatch}
COUNTS_UNDER = {"pixels": True, "samples": False, "bits": True}  # does the mixed stage take the counts' frequencies?


def uses_counts(way: str) -> bool:
    """Whether a way's pipeline includes method 5's context counts."""
    return way == "context" or COUNTS_UNDER.get(way, False)


def code_length(symbols: np.ndarray, freqs: np.ndarray) -> float:
    """Ideal code length in bits: how the encoder picks a way of coding (never decoded)."""
    if not len(symbols):
        return 0.0
    f = freqs[np.arange(len(symbols)), symbols.astype(np.int64)]
    return float(-np.log2(f / (1 << FREQ_BITS)).sum())


def way_frequencies(way: str, symbols: np.ndarray, freqs: np.ndarray, layout: Layout) -> np.ndarray:
    """The frequencies [T, 256] a way codes with, from the network's (left as they are)."""
    if way == "neural":
        return freqs
    out = match.apply(symbols, freqs)
    if way == "context1" or uses_counts(way):
        counts.apply(symbols, out, counts.config("context1" if way == "context1" else "context", layout.modality),
                     in_place=True)
    if way in MIXED:
        MIXED[way].apply(symbols, out, layout, in_place=True)
    return out


def best_way(symbols: np.ndarray, freqs: np.ndarray, ways: tuple[str, ...],
             layout: Layout = Layout.text(), recompute: Callable[[], np.ndarray] | None = None
             ) -> tuple[str, np.ndarray]:
    """The allowed way with the shortest ideal code, and its frequencies, from the network's.

    The ways build on each other (match, then context counts, then the pixel model or the bit
    mixer; or match, then the sample model), so one working copy is rewritten stage by stage in
    place, and a second one for "context1": at most two [T, 256] arrays live besides the
    network's (256 MB each for a 256 KiB segment). A way that wins but is not the last stage
    computed is recomputed (the stages take milliseconds to a fraction of a second; the
    network's pass dominates). Where the pixel or sample model or the bit mixer does not apply
    (not an image, not 16-bit audio, not text or binary), that way codes as "context"; where the
    sample model runs, "context" is not tried (its counts gain audio 0.1 % and would cost a pass).

    With `recompute` (which gives the network's frequencies again) the working copy is `freqs`
    itself (copying a 256 KiB segment's cost a tenth of the stages' time); a winner that needs
    the network's frequencies back, rare, recomputes them.
    """
    ways = tuple(dict.fromkeys("context" if w in MIXED and not MIXED[w].applies(layout) else w for w in ways))
    costs = {"neural": code_length(symbols, freqs)} if "neural" in ways else {}
    if ways == ("neural",):
        return "neural", freqs
    work = match.apply(symbols, freqs, in_place=recompute is not None)
    last = "match"
    if "match" in ways:
        costs["match"] = code_length(symbols, work)
    if "context1" in ways:
        first = counts.apply(symbols, work, counts.config("context1", layout.modality))
        costs["context1"] = code_length(symbols, first)
        del first
    mixed = [w for w in MIXED if w in ways]  # at most one applies to a layout
    on_match = [w for w in mixed if not COUNTS_UNDER[w]]  # the sample model: counts not tried beside it
    if ("context" in ways or mixed) and not on_match:
        counts.apply(symbols, work, counts.config("context", layout.modality), in_place=True)
        last = "context"
        if "context" in ways:
            costs["context"] = code_length(symbols, work)
    for w in mixed:
        MIXED[w].apply(symbols, work, layout, in_place=True)
        last = w
        costs[w] = code_length(symbols, work)
    way = min(costs, key=lambda w: (costs[w], WAYS.index(w)))
    if way == last:
        return way, work
    if recompute is not None:
        del work, freqs
        freqs = recompute()
    return way, freqs if way == "neural" else way_frequencies(way, symbols, freqs, layout)


def encode_segments(model: IntModel, segments: list[bytes], layout: Layout,
                    ways: tuple[str, ...] = WAYS) -> list[tuple[str, bytes]]:
    """Teacher-forced pass over each segment (`IntModel.segment_frequencies`), then one range-coder stream each.

    `ways` says which codings may be used (WAYS: the network's frequencies as they are, rescaled by
    the match model, or by the match model then blended with the segment's context counts, or
    mixed with the pixel or sample model); of those, the one with the shortest ideal code length
    is coded. Returns (way, coded bytes) per segment.

    One segment at a time: a segment is already a long sequence, so batching gains little here
    and would multiply the pass's memory (results are identical either way; tests pin it).
    """
    if not ways or set(ways) - set(WAYS):
        raise ValueError(f"ways must be a non-empty subset of {WAYS}")
    out = []
    for s in segments:
        symbols = np.frombuffer(s, dtype=np.uint8)
        if not s:
            out.append((ways[0], encode_symbols(symbols, None)))
            continue
        network = functools.partial(model.segment_frequencies, symbols, layout)
        way, freqs = best_way(symbols, network(), ways, layout, network)
        out.append((way, encode_symbols(symbols, freqs)))
    return out


def batch_stages(ways: list[str], history: np.ndarray, layout: Layout) -> list:
    """The decode batch's stages over `history` [B, length] for segments coded `ways[i]` (each
    stage flags the segments whose way includes it); shared with chain.Chain (a batch of one)."""
    stages = []
    if any(w != "neural" for w in ways):
        stages.append(match.MatchBatch([w != "neural" for w in ways], history))
    for name in COUNTED:
        use = [w == "context1" if name == "context1" else uses_counts(w) for w in ways]
        if any(use):
            stages.append(counts.CountsBatch(use, history, counts.config(name, layout.modality)))
    for name, module in MIXED.items():
        if name in ways:
            if not module.applies(layout):
                raise CoderError(f"a segment says it was coded with the {name} model, which does not fit this layout")
            stages.append(MIXED_BATCH[name]([w == name for w in ways], history, layout))
    return stages


def _turns(dec, step: Callable, stages, history: np.ndarray, symbols: np.ndarray) -> tuple[Callable, Callable]:
    """The decode loop's two halves at a position ts of the stages' history: predict(ts), the
    float32 frequencies to decode with; learn(ts), after `symbols` holds the decoded bytes. In two C
    calls where the step and every stage run in C (native.DecodeTurns), else step by step."""
    if isinstance(dec, native.NativeDecoder) and (isinstance(stages, match.NativeStages) or not stages.stages):
        turns = native.DecodeTurns(dec, stages.args if isinstance(stages, match.NativeStages) else None, history,
                                   symbols)

        def learn_native(ts: int) -> None:
            failed = turns.learn(ts)
            if failed:
                stages.check(failed)

        return turns.predict, learn_native

    def learn(ts: int) -> None:
        history[:, ts] = symbols
        stages.update(ts)
        dec.push(symbols)

    return lambda ts: stages.adjust(step(), ts).astype(np.float32), learn


def decode_segments(model: IntModel, coded: list[bytes], lengths: list[int], layout: Layout,
                    ways: list[str] | None = None, chain: Chain | None = None) -> list[bytes]:
    """Decode a batch of segments in lock-step: one batched engine step per byte position.

    `ways[i]` is how segment i was coded (default: "neural" for all). With `chain` (a
    chain.Chain), the one segment continues that chain: its stages carry on from the chain's
    state and its bytes are appended to the chain's history.
    """
    if not coded:
        return []
    if any(len(c) % 4 for c in coded):
        raise CoderError("coded segment length is not a whole number of coder words")
    ways = ways or ["neural"] * len(coded)
    if set(ways) - set(WAYS):
        raise ValueError(f"unknown way of coding in {set(ways)}")
    decoders = [constriction.stream.queue.RangeDecoder(np.frombuffer(c, dtype="<u4").astype(np.uint32))
                for c in coded]
    n, t_len = len(coded), max(lengths)
    dec = model.decoder([layout] * n, t_len)
    step = dec.step_numpy if hasattr(dec, "step_numpy") else lambda: dec.step().cpu().numpy()
    if chain is None:
        out, offset = np.zeros((n, t_len), dtype=np.uint8), 0
        # every stage in one C call per step where all are native
        stages = match.NativeStages.of(batch_stages(ways, out, layout), out)
    else:
        if n != 1 or ways != [chain.way]:
            raise ValueError("a chain continues with one segment of its own way")
        out, offset, stages = chain.history, chain.length, chain.stages
    lengths_arr = np.array(lengths)
    symbols = np.zeros(n, dtype=np.int64)
    predict, learn = _turns(dec, step, stages, out, symbols)
    ends = sorted(set(lengths))  # the segments still decoding change only where one ends
    for t in range(t_len):
        if t == 0 or t == ends[0]:
            ends = [e for e in ends if e > t]
            active = lengths_arr > t
            live = [(i, decoders[i]) for i in np.flatnonzero(active)]
            symbols[~active] = 0
            stages.set_active(active)
        probs = predict(offset + t)
        for i, decoder in live:
            try:
                symbols[i] = decoder.decode(_FAMILY, probs[i : i + 1])[0]
            except AssertionError as e:  # constriction's report of data no encoder could produce
                raise CoderError(str(e)) from None
        learn(offset + t)
    if chain is not None:
        chain.length += lengths[0]
    return [out[i, offset : offset + lengths[i]].tobytes() for i in range(n)]
