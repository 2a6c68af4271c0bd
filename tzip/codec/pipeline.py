"""A method's stages, built from the method table: over a whole segment (compression) or as a
decode batch (decompression).

The stages build on each other in the order the table gives: the match model, then the context
counts, then one last stage that fits the layout (the pixel model, the sample model or the bit
mixer). Each runs in C where the library is built and in Python otherwise, with the same integers.
"""

from __future__ import annotations

import numpy as np

from tzip.codec.rangecoder import CoderError
from tzip.format.layout import Layout
from tzip.format.methods import CODED, method
from tzip.stages import bits, counts, match, pixels, samples
from tzip.stages.protocol import NativeStages, scan_rows

WAYS = CODED  # the range-coded methods by name, in id order (ties go to the earlier)
# the last stages, each for its own layouts: "sparse" is the bit mixer with binary data's context set
# ("bits-net" the text set with the network's own row as one more input)
LAST = {"pixels": pixels, "samples": samples, "bits": bits, "sparse": bits.Sparse, "bits-net": bits.Net}
LAST_BATCH = {"pixels": pixels.PixelsBatch, "samples": samples.SamplesBatch, "bits": bits.BitsBatch,
              "sparse": bits.Sparse.batch, "bits-net": bits.Net.batch}
COUNTS_CONFIG = {"counts1": "context1", "counts": "context"}  # a counts stage's configuration (counts.config)


def piece_bounds(length: int, piece_rows: int):
    """(row0, n) of each piece of at most piece_rows rows of a segment of `length` bytes, in order."""
    for t0 in range(0, length, piece_rows):
        yield t0, min(piece_rows, length - t0)


def stages_of(way: str) -> tuple[str, ...]:
    return method(way).stages or ()


def uses_counts(way: str) -> bool:
    """Whether a way's pipeline includes method 5's context counts."""
    return "counts" in stages_of(way)


def reads_network(way: str) -> bool:
    """Whether a way's last stage reads the network's own rows beside the incoming ones (method 14)."""
    last = last_stage(way)
    return last is not None and getattr(LAST[last], "reads_network", False)


def last_stage(way: str) -> str | None:
    """The way's layout-specific last stage (pixels, samples, bits), if it has one."""
    stages = stages_of(way)
    return stages[-1] if stages and stages[-1] in LAST else None


def fits(way: str, layout: Layout) -> bool:
    """Whether a way's stages apply to a layout (the pixel model needs an image, ...)."""
    last = last_stage(way)
    return last is None or LAST[last].applies(layout)


# What a stage's state costs in a decode batch, per segment: fixed bytes, bytes per segment byte
# (measured with resource.getrusage on 128 KiB segments, rounded up: the context counts' tables
# grow with the contexts seen, the pixel model keeps per-pixel errors, the bit mixer its slots)
STATE_BYTES = {"match": (1 << 18, 0), "counts1": (0, 200), "counts": (0, 200), "pixels": (0, 110),
               "samples": (0, 16), "bits": (25 << 20, 0), "sparse": (25 << 20, 0),
               "bits-net": (25 << 20, 0)}


def state_bytes(way: str, n: int) -> int:
    """About how much memory decoding a segment of n bytes coded `way` holds (its stages and its
    history): what bounds how many segments decode together."""
    return 2 * n + sum(fixed + per_byte * n for fixed, per_byte in (STATE_BYTES[s] for s in stages_of(way)))


def way_frequencies(way: str, symbols: np.ndarray, freqs: np.ndarray, layout: Layout) -> np.ndarray:
    """The frequencies [T, 256] a way codes with, from the network's (left as they are)."""
    out = freqs
    for stage in stages_of(way):  # the table starts every staged method with the match model: a copy
        if stage == "match":
            out = match.apply(symbols, freqs)
        elif stage in COUNTS_CONFIG:
            counts.apply(symbols, out, counts.config(COUNTS_CONFIG[stage], layout.modality), in_place=True)
        elif reads_network(way):  # the last stage: beside the incoming rows, the network's own
            LAST[stage].apply(symbols, out, layout, in_place=True, net=freqs)
        else:
            LAST[stage].apply(symbols, out, layout, in_place=True)
    return out


def stage_batch(stage: str, use: list[bool], history: np.ndarray, layout: Layout):
    """One stage's decode batch over `history` [B, length] for the segments flagged in `use`."""
    if stage == "match":
        return match.MatchBatch(use, history)
    if stage in COUNTS_CONFIG:
        return counts.CountsBatch(use, history, counts.config(COUNTS_CONFIG[stage], layout.modality))
    if not LAST[stage].applies(layout):
        raise CoderError(f"a segment says it was coded with the {stage} model, which does not fit this layout")
    return LAST_BATCH[stage](use, history, layout)


def batch_stages(ways: list[str], history: np.ndarray, layout: Layout) -> list:
    """The decode batch's stages over `history` [B, length] for segments coded `ways[i]` (each
    stage flags the segments whose way includes it); shared with chain.Chain (a batch of one)."""
    order = ["match", *COUNTS_CONFIG, *LAST]
    uses = {stage: [stage in stages_of(w) for w in ways] for stage in order}
    return [stage_batch(stage, uses[stage], history, layout) for stage in order if any(uses[stage])]


class RowScan:
    """Stages run over one segment's rows in order, a piece at a time, as one batch of one whose
    states carry on from piece to piece (compression in bounded memory; a chain)."""

    def __init__(self, stages: tuple[str, ...], history: np.ndarray, layout: Layout):
        self.history = history  # [1, length]: the bytes the stages read, filled before they scan them
        self.run = NativeStages.of([stage_batch(s, [True], history, layout) for s in stages], history)
        self.run.set_active(np.ones(1, dtype=bool))

    def scan(self, t0: int, freqs: np.ndarray) -> np.ndarray:
        """Rows t0.. rewritten in place (int32 [n, 256], C order); the stages learn their bytes."""
        scan_rows(self.run, t0, freqs)
        return freqs
