"""Range coding of segments with the engine's integer frequencies (constriction).

Each segment is its own range-coder stream. Frequencies reach constriction as exact integers
(in float32, which holds them exactly): constriction's Categorical(perfect=False) turns them
into its fixed-point model by a deterministic integer-exact procedure, identically on encode
and decode, so no float computed by us ever decides a symbol.
"""

from __future__ import annotations

import constriction
import numpy as np

from . import match
from .context import Layout
from .engine import IntModel

_FAMILY = constriction.stream.model.Categorical(perfect=False)


class CoderError(ValueError):
    pass


def encode_symbols(symbols: np.ndarray, freqs: np.ndarray | None) -> bytes:
    enc = constriction.stream.queue.RangeEncoder()
    if len(symbols):
        enc.encode(symbols.astype(np.int32), _FAMILY, freqs.astype(np.float32))
    return enc.get_compressed().astype("<u4").tobytes()


def encode_segments(model: IntModel, segments: list[bytes], layout: Layout,
                    ways: tuple[str, ...] = ("neural", "match")) -> list[tuple[bool, bytes]]:
    """Teacher-forced pass over each segment (`IntModel.segment_frequencies`), then one range-coder stream each.

    `ways` says which codings may be used: the network's frequencies as they are ("neural") and/or
    rescaled by the match model ("match"). Where both may, the one with the shorter ideal code
    length is coded. Returns (matched, coded bytes) per segment.

    One segment at a time: a segment is already a long sequence, so batching gains little here
    and would multiply the pass's memory (results are identical either way; tests pin it).
    """
    if not set(ways) & {"neural", "match"} or set(ways) - {"neural", "match"}:
        raise ValueError("ways must be a non-empty subset of ('neural', 'match')")
    out = []
    for s in segments:
        symbols = np.frombuffer(s, dtype=np.uint8)
        if not s:
            out.append(("match" in ways and "neural" not in ways, encode_symbols(symbols, None)))
            continue
        freqs = model.segment_frequencies(symbols, layout)
        matched = "match" in ways
        if matched:
            rescaled = match.apply(symbols, freqs)
            if "neural" in ways and match.code_length(symbols, freqs) <= match.code_length(symbols, rescaled):
                matched = False
            else:
                freqs = rescaled
        out.append((matched, encode_symbols(symbols, freqs)))
    return out


def decode_segments(model: IntModel, coded: list[bytes], lengths: list[int], layout: Layout,
                    matched: list[bool] | None = None) -> list[bytes]:
    """Decode a batch of segments in lock-step: one batched engine step per byte position.

    `matched[i]` says segment i was coded with the match model's frequencies (default: none was).
    """
    if not coded:
        return []
    if any(len(c) % 4 for c in coded):
        raise CoderError("coded segment length is not a whole number of coder words")
    decoders = [constriction.stream.queue.RangeDecoder(np.frombuffer(c, dtype="<u4").astype(np.uint32))
                for c in coded]
    n, t_len = len(coded), max(lengths)
    out = np.zeros((n, t_len), dtype=np.uint8)
    dec = model.decoder([layout] * n, t_len)
    step = dec.step_numpy if hasattr(dec, "step_numpy") else lambda: dec.step().cpu().numpy()
    matcher = match.MatchBatch(matched, out) if matched and any(matched) else None
    lengths_arr = np.array(lengths)
    for t in range(t_len):
        active = lengths_arr > t
        freqs = step()
        if matcher is not None:
            freqs = matcher.adjust(freqs, active)
        probs = freqs.astype(np.float32)
        symbols = np.zeros(n, dtype=np.int64)
        for i in np.flatnonzero(active):
            try:
                symbols[i] = decoders[i].decode(_FAMILY, probs[i : i + 1])[0]
            except AssertionError as e:  # constriction's report of data no encoder could produce
                raise CoderError(str(e)) from None
        out[:, t] = symbols
        if matcher is not None:
            matcher.update(t, active)
        dec.push(symbols)
    return [out[i, : lengths[i]].tobytes() for i in range(n)]
