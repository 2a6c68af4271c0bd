"""The encoder's policy: which method codes a segment, and the segment's coded bytes.

Independent segments take the allowed method with the shortest ideal code (`encode_segment`,
from one pass of the network, in pieces of rows so memory stays bounded); a chained stream
codes every segment with one method (`chain_way`), the most refined that fits the layout, whose
stages carry on from segment to segment. Either way the caller then keeps the smallest of
that, stored and zstd (api.TzipCompressor._frame).
"""

from __future__ import annotations

import numpy as np

from tzip.codec.pipeline import LAST, WAYS, RowScan, fits, piece_bounds, stages_of, uses_counts
from tzip.codec.rangecoder import SymbolEncoder, encode_symbols
from tzip.engine.constants import FREQ_BITS
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
    """The way a chained stream codes its segments: the most refined allowed way for the layout
    (the one encode_segment picks on text), or None where that way cannot chain (the pixel and sample
    models keep per-segment arrays) or none with stages is allowed; the stages without the network
    (classical) only where no way with it is allowed. Binary chains take the bit mixer with binary
    data's contexts (sparse), text chains the text set's (bits)."""
    mixers = ("sparse", "bits") if layout.modality == BINARY else ("bits", "sparse")
    for way in ("pixels", "samples", *mixers, "context", "match", "classical"):
        if way in methods and fits(way, layout):
            return way if way in CHAINABLE else None
    return None


# the ways an independent segment is coded with here: those with the network that are not a chain's
# alone (the classical way and the network's binary way code chains only, api.TzipCompressor._code_chained)
NETWORK_WAYS = tuple(w for w in WAYS if method(w).network and not method(w).chained_only)
PIECE_ROWS = 1 << 15  # positions whose frequencies (1 KB each) are in memory at once, per array
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
    second pass codes that one."""
    # the ways build on each other (match, then the context counts, then the pixel model or the bit
    # mixer; or match, then the sample model); where the last stage does not fit the layout the
    # way codes as "context", and beside the sample model "context" is not tried (its counts gain
    # audio 0.1 % and would cost a pass)
    ways = tuple(dict.fromkeys("context" if not fits(w, layout) else w for w in ways))
    mixed = [w for w in LAST if w in ways]  # at most one applies to a layout
    on_match = [w for w in mixed if not uses_counts(w)]  # the sample model: counts not tried beside it
    plan = ["match"] if any(w != "neural" for w in ways) else []
    if ("context" in ways or mixed) and not on_match:
        plan.append("counts")
    plan += mixed
    last = STAGE_WAY.get(plan[-1], plan[-1]) if plan else "neural"
    history = np.ascontiguousarray(symbols, dtype=np.uint8)[None]
    scans = {stage: RowScan((stage,), history, layout) for stage in plan}
    first = RowScan(("counts1",), history, layout) if "context1" in ways else None
    costs: dict[str, float] = {}  # the allowed ways computed, and their code lengths so far

    def cost(way: str, x: np.ndarray, f: np.ndarray) -> None:
        if way in ways:
            costs[way] = costs.get(way, 0.0) + code_length(x, f)

    coder = SymbolEncoder()
    for t0, x, f in _pieces(model, symbols, layout, piece_rows):
        cost("neural", x, f)
        for stage in plan:
            scans[stage].scan(t0, f)
            if stage == "match" and first is not None:
                cost("context1", x, first.scan(t0, f.copy()))
            cost(STAGE_WAY.get(stage, stage), x, f)
        coder.add(x, f)
        del f
    way = min(costs, key=lambda w: (costs[w], WAYS.index(w)))
    if way == last:
        return way, coder.bytes()
    del coder, scans, first
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
    if not ways or set(ways) - set(NETWORK_WAYS):
        raise ValueError(f"ways must be a non-empty subset of {NETWORK_WAYS}")
    out = []
    for s in segments:
        symbols = np.frombuffer(s, dtype=np.uint8)
        if not s:
            out.append((ways[0], encode_symbols(symbols, None)))
            continue
        out.append(encode_segment(model, symbols, layout, ways))
    return out
