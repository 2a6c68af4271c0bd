"""The encoder's policy: which method codes a segment, and the segment's coded bytes.

Independent segments take the allowed method with the shortest ideal code (`best_way`, from
one pass of the network); a chained stream codes every segment with one method (`chain_way`),
the most refined that fits the layout, whose stages carry on from segment to segment. Either
way the caller then keeps the smallest of that, stored and zstd (api.TzipCompressor._frame).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from tzip.codec.pipeline import LAST, WAYS, fits, uses_counts, way_frequencies
from tzip.codec.rangecoder import encode_symbols
from tzip.engine.constants import FREQ_BITS
from tzip.format.layout import Layout
from tzip.format.methods import CHAINABLE
from tzip.stages import counts, match


def code_length(symbols: np.ndarray, freqs: np.ndarray) -> float:
    """Ideal code length in bits: how the encoder picks a way of coding (never decoded)."""
    if not len(symbols):
        return 0.0
    f = freqs[np.arange(len(symbols)), symbols.astype(np.int64)]
    return float(-np.log2(f / (1 << FREQ_BITS)).sum())


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
    ways = tuple(dict.fromkeys("context" if not fits(w, layout) else w for w in ways))
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
    mixed = [w for w in LAST if w in ways]  # at most one applies to a layout
    on_match = [w for w in mixed if not uses_counts(w)]  # the sample model: counts not tried beside it
    if ("context" in ways or mixed) and not on_match:
        counts.apply(symbols, work, counts.config("context", layout.modality), in_place=True)
        last = "context"
        if "context" in ways:
            costs["context"] = code_length(symbols, work)
    for w in mixed:
        LAST[w].apply(symbols, work, layout, in_place=True)
        last = w
        costs[w] = code_length(symbols, work)
    way = min(costs, key=lambda w: (costs[w], WAYS.index(w)))
    if way == last:
        return way, work
    if recompute is not None:
        del work, freqs
        freqs = recompute()
    return way, freqs if way == "neural" else way_frequencies(way, symbols, freqs, layout)


def chain_way(methods, layout: Layout) -> str | None:
    """The way a chained stream codes its segments: the most refined allowed way for the layout
    (the one best_way picks on text), or None where that way cannot chain (the pixel and sample
    models keep per-segment arrays) or none with stages is allowed."""
    for way in (*LAST, "context", "match"):
        if way in methods and fits(way, layout):
            return way if way in CHAINABLE else None
    return None


def encode_segments(model, segments: list[bytes], layout: Layout,
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
