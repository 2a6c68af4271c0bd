"""The decoder: segments decoded in lock-step, one batched engine step per byte position.

At each position the engine gives every segment's network frequencies, the segments' stages
(built from their methods, pipeline.batch_stages) rewrite them, and each segment's range decoder
reads its byte; then the bytes join the histories and the stages learn from them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tzip.codec.chain import Chain
from tzip.codec.pipeline import WAYS, batch_stages
from tzip.codec.rangecoder import SymbolDecoder
from tzip.engine.constants import UNIFORM_FREQ
from tzip.engine.native import DecodeTurns, NativeDecoder
from tzip.format.layout import Layout
from tzip.format.methods import method
from tzip.stages.protocol import NativeStages


def _turns(dec, step: Callable, stages, history: np.ndarray, symbols: np.ndarray) -> tuple[Callable, Callable]:
    """The decode loop's two halves at a position ts of the stages' history: predict(ts), the
    float32 frequencies to decode with; learn(ts), after `symbols` holds the decoded bytes. In two C
    calls where the step and every stage run in C (DecodeTurns), else step by step."""
    if isinstance(dec, NativeDecoder) and (isinstance(stages, NativeStages) or not stages.stages):
        turns = DecodeTurns(dec, stages.args if isinstance(stages, NativeStages) else None, history, symbols)

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


class UniformModel:
    """A stand-in for the network that predicts the uniform distribution at every position: what the
    stages of a method without the network (methods.Method.network False) start from."""

    class Decoder:
        def __init__(self, n: int):
            self.rows = np.full((n, 256), UNIFORM_FREQ, dtype=np.int32)

        def step_numpy(self) -> np.ndarray:
            return self.rows.copy()  # the stages may rewrite what they are given in place

        def push(self, symbols: np.ndarray) -> None:
            pass

    def decoder(self, layouts: list[Layout], length: int) -> UniformModel.Decoder:
        return self.Decoder(len(layouts))


UNIFORM = UniformModel()


def decode_segments(model, coded: list[bytes], lengths: list[int], layout: Layout,
                    ways: list[str] | None = None, chain: Chain | None = None) -> list[bytes]:
    """Decode a batch of segments in lock-step: one batched engine step per byte position.

    `ways[i]` is how segment i was coded (default: "neural" for all). With `chain` (a
    chain.Chain), the one segment continues that chain: its way's stages carry on from the chain's
    state and its bytes are appended to the chain's history. Segments coded without the network
    decode without it: the classical way's (coded bit by bit) each on its own, methods 12 and 13's
    in a batch of their own, their stages fed a uniform distribution (UniformModel).
    """
    if not coded:
        return []
    ways = ways or ["neural"] * len(coded)
    if set(ways) - set(WAYS):
        raise ValueError(f"unknown way of coding in {set(ways)}")
    if chain is not None:
        if len(coded) != 1:
            raise ValueError("a chain continues with one segment at a time")
        chain.begin(ways[0])  # the segment's way runs its stages (one of the chain's family)
    alone = [method(w).bitwise for w in ways]  # coded bit by bit, each on its own (codec/classical.py)
    if any(alone):
        if chain is not None:
            return [chain.decode(coded[0], lengths[0])]
        rest = iter(decode_segments(model, *(
            [v for v, a in zip(values, alone) if not a] for values in (coded, lengths)), layout,
            [w for w, a in zip(ways, alone) if not a]))
        return [Chain(w, layout, n).decode(c, n) if a else next(rest)
                for c, n, w, a in zip(coded, lengths, ways, alone)]
    uniform = [not method(w).network for w in ways]  # range-coded from a uniform distribution: no network
    if any(uniform) and not all(uniform):
        parts = {u: iter(decode_segments(model if not u else UNIFORM, *(
            [v for v, x in zip(values, uniform) if x == u] for values in (coded, lengths)), layout,
            [w for w, x in zip(ways, uniform) if x == u])) for u in (False, True)}
        return [next(parts[u]) for u in uniform]
    if all(uniform):
        model = UNIFORM
    decoders = [SymbolDecoder(c) for c in coded]
    n, t_len = len(coded), max(lengths)
    dec = model.decoder([layout] * n, t_len)
    step = dec.step_numpy if hasattr(dec, "step_numpy") else lambda: dec.step().cpu().numpy()
    if chain is None:
        out, offset = np.zeros((n, t_len), dtype=np.uint8), 0
        # every stage in one C call per step where all are native
        stages = NativeStages.of(batch_stages(ways, out, layout), out)
    else:
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
            if hasattr(dec, "set_active"):  # a model with hints stops those of the segments that ended
                dec.set_active(active)
        probs = predict(offset + t)
        for i, decoder in live:
            symbols[i] = decoder.decode(probs[i : i + 1])
        learn(offset + t)
    if chain is not None:
        chain.length += lengths[0]
    return [out[i, offset : offset + lengths[i]].tobytes() for i in range(n)]

