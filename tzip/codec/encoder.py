"""The encoder's policy: which method codes a segment, and the segment's coded bytes.

Independent segments take the allowed method with the shortest ideal code (`encode_segment`,
from one pass of the network, and for images and audio a pass of the same stages over a uniform
distribution beside it, in pieces of rows so memory stays bounded); a chained stream codes its
segments with the chain's way (`chain_way`), the most refined that fits the layout, whose stages
carry on from segment to segment, or without the network where its trial and contests find that
smaller (api.TzipCompressor._code_chained). Either way the caller then keeps the smallest of
that, stored and zstd (api.TzipCompressor._frame).
"""

from __future__ import annotations

import numpy as np

from tzip.codec.pipeline import LAST, WAYS, RowScan, fits, piece_bounds, stages_of, uses_counts
from tzip.codec.rangecoder import SymbolEncoder, encode_symbols
from tzip.engine.constants import FREQ_BITS, UNIFORM_FREQ
from tzip.format.layout import BINARY, Layout
from tzip.format.methods import CHAINABLE, method
from tzip.stages.hints import model_hints


def code_length(symbols: np.ndarray, freqs: np.ndarray) -> float:
    """Ideal code length in bits: how the encoder picks a way of coding (never decoded)."""
    if not len(symbols):
        return 0.0
    f = freqs[np.arange(len(symbols)), symbols.astype(np.int64)]
    return float(-np.log2(f / (1 << FREQ_BITS)).sum())


def chain_way(methods, layout: Layout) -> str | None:
    """The way a chained stream codes its segments: the most refined allowed way for the layout, or
    None where that way cannot chain (the pixel and sample models keep per-segment arrays) or none
    with stages is allowed; the stages without the network (classical) only where no way with it is
    allowed. Binary chains take the bit mixer with binary
    data's contexts (sparse), text chains the text set's with the network's own row (bits-net)."""
    mixers = ("sparse", "bits") if layout.modality == BINARY else ("bits-net", "bits", "sparse")
    for way in ("pixels", "samples", *mixers, "context", "match", "classical"):
        if way in methods and fits(way, layout):
            return way if way in CHAINABLE else None
    return None


# the ways an independent segment is coded with here: all but a chain's alone (the classical way and the
# network's binary way code chains only, api.TzipCompressor._code_chained)
SEGMENT_WAYS = tuple(w for w in WAYS if not method(w).chained_only)
PIECE_ROWS = 1 << 15  # positions whose frequencies (1 KB each) are in memory at once, per array
# Where a way without the network is allowed (methods 12 and 13), the first PROBE_ROWS rows of a
# segment decide whether the network goes on: a network behind at the probe stops there (along a
# segment of the image bench set its cost only grows against the uniform distribution's: chelsea.ppm
# +1.8 % at 16 KiB, +3.3 % over 256 KiB). Ahead at the probe, the network's lead can turn: a way with
# a PROBE_MARGIN stops the uniform way's coding where the network leads by more than that, and a way
# without one runs both to the segment's end. On pixels a 1 % lead has held on every image of the
# bench set (under 1 %, astronaut.ppm turns); on samples no lead is safe (four sonic-pi samples lead
# by over 1 % at 16 KiB and end up to 0.56 % larger than the uniform way codes them), so method 13
# always runs to the end, for 6.5 % of the audio set's compression time.
PROBE_ROWS = 1 << 14
PROBE_MARGIN = {"classical-pixels": 0.01}
STAGE_WAY = {"match": "match", "counts": "context"}  # the way a stage completes (the last stages are ways)


def _pieces(model, symbols: np.ndarray, layout: Layout, piece_rows: int):
    """(row0, the piece's bytes, its network frequencies [n, 256] int32) in order. No reference to
    a yielded piece stays here: the caller's `del` frees it (32 MB) before the network's pass over
    the next piece makes that one, so the two are never alive together."""
    hints = model_hints(model, symbols, layout)  # once for all the pieces
    for t0, n in piece_bounds(len(symbols), piece_rows):
        freqs = np.ascontiguousarray(model.segment_frequencies(symbols, layout, rows=(t0, n), hints=hints),
                                     dtype=np.int32)
        yield t0, symbols[t0 : t0 + n], freqs
        del freqs


def encode_segment(model, symbols: np.ndarray, layout: Layout, ways: tuple[str, ...],
                   piece_rows: int = PIECE_ROWS) -> tuple[str, bytes]:
    """The allowed way with the shortest ideal code, and the segment coded with it, in memory
    bounded by piece_rows: the network's frequencies come a piece of rows at a time, the
    stages rewrite each piece in place as they build on each other (their states carry on from
    piece to piece: the same integers as one pass), and the cost of each allowed way is summed.
    The most refined way computed is range-coded as it goes; where another way wins (rare), a
    second pass codes that one.

    A way without the network (methods 12 and 13) runs its own stages over the uniform
    distribution beside them and is range-coded as it goes too: after the first PROBE_ROWS rows
    it goes on alone where it is already smaller (the network's pass is most of the time its ways
    cost), stops where the network's ways lead by more than its PROBE_MARGIN, and else both go on."""
    # the ways build on each other (match, then the context counts, then the pixel model or the bit
    # mixer; or match, then the sample model); where the last stage does not fit the layout the
    # way codes as "context", and beside the sample model "context" is not tried (its counts gain
    # audio 0.1 % and would cost a pass); a way without the network is dropped where it does not fit
    history = np.ascontiguousarray(symbols, dtype=np.uint8)[None]
    uniform = {w: RowScan(stages_of(w), history, layout) for w in ways if not method(w).network and fits(w, layout)}
    asked, ways = ways, tuple(dict.fromkeys("context" if not fits(w, layout) else w for w in ways if method(w).network))
    if not ways and not uniform:
        raise ValueError(f"none of the ways {asked} fits this layout")
    mixed = [w for w in LAST if w in ways]  # at most one applies to a layout
    on_match = [w for w in mixed if not uses_counts(w)]  # the sample model: counts not tried beside it
    plan = ["match"] if any(w != "neural" for w in ways) else []
    if ("context" in ways or mixed) and not on_match:
        plan.append("counts")
    plan += mixed
    last = STAGE_WAY.get(plan[-1], plan[-1]) if plan else "neural"
    scans = {stage: RowScan((stage,), history, layout) for stage in plan}
    first = RowScan(("counts1",), history, layout) if "context1" in ways else None
    costs: dict[str, float] = {}  # the allowed ways computed, and their code lengths so far
    hints = model_hints(model, symbols, layout) if ways else None  # once for all the pieces
    coders = {w: SymbolEncoder() for w in (last, *uniform)}

    def cost(way: str, x: np.ndarray, f: np.ndarray) -> None:
        if way in ways or way in uniform:
            costs[way] = costs.get(way, 0.0) + code_length(x, f)

    bounds = list(piece_bounds(len(symbols), piece_rows))
    probing = bool(uniform and ways) and len(symbols) > PROBE_ROWS  # shorter: both ways run to the end
    if probing:  # the probe's rows are a piece of their own
        bounds = [(0, PROBE_ROWS), *((PROBE_ROWS + t0, n) for t0, n in piece_bounds(len(symbols) - PROBE_ROWS,
                                                                                      piece_rows))]
    for t0, n in bounds:
        x = symbols[t0 : t0 + n]
        for way, scan in uniform.items():
            u = scan.scan(t0, np.full((n, 256), UNIFORM_FREQ, dtype=np.int32))
            cost(way, x, u)
            coders[way].add(x, u)
            del u
        if ways:
            f = np.ascontiguousarray(model.segment_frequencies(symbols, layout, rows=(t0, n), hints=hints),
                                     dtype=np.int32)
            cost("neural", x, f)
            for stage in plan:
                scans[stage].scan(t0, f)
                if stage == "match" and first is not None:
                    cost("context1", x, first.scan(t0, f.copy()))
                cost(STAGE_WAY.get(stage, stage), x, f)
            coders[last].add(x, f)
            del f
        if probing and t0 == 0:
            without = min(costs[w] for w in uniform)
            with_network = min(costs[w] for w in ways if w in costs)
            if without < with_network:  # behind already, the network stays behind
                for w in ways:
                    costs.pop(w, None)
                ways = ()
            else:  # ahead: a uniform way stops where the network's lead is past that way's margin
                for w in [w for w in uniform if w in PROBE_MARGIN and with_network < costs[w] * (1 - PROBE_MARGIN[w])]:
                    costs.pop(w)
                    del uniform[w]
    way = min(costs, key=lambda w: (costs[w], WAYS.index(w)))
    if way in coders:
        return way, coders[way].bytes()
    del coders, scans, first
    uniform.clear()
    redo = RowScan(stages_of(way), history, layout) if stages_of(way) else None
    coder = SymbolEncoder()
    for t0, x, f in _pieces(model, symbols, layout, piece_rows):
        coder.add(x, redo.scan(t0, f) if redo is not None else f)
        del f
    return way, coder.bytes()


def encode_segments(model, segments: list[bytes], layout: Layout,
                    ways: tuple[str, ...] = WAYS) -> list[tuple[str, bytes]]:
    """Each segment coded by `encode_segment`: (way, coded bytes) per segment.

    `ways` says which codings may be used (WAYS: the network's frequencies as they are, rescaled by
    the match model, or by the match model then blended with the segment's context counts, or
    mixed with the pixel or sample model); of those, the one with the shortest ideal code length
    is coded.

    One segment at a time: a segment is already a long sequence, so batching gains little here
    and would multiply the pass's memory (results are identical either way; tests pin it).
    """
    if not ways or set(ways) - set(SEGMENT_WAYS):
        raise ValueError(f"ways must be a non-empty subset of {SEGMENT_WAYS}")
    out = []
    for s in segments:
        symbols = np.frombuffer(s, dtype=np.uint8)
        if not s:
            out.append((ways[0], encode_symbols(symbols, None)))
            continue
        out.append(encode_segment(model, symbols, layout, ways))
    return out
