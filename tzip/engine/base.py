"""What the codec needs of an engine, and the checks every engine's model passes first.

An engine turns an integer model file into frequencies: `segment_frequencies` (teacher-forced,
over one segment: compression) and `decoder` (one byte position at a time over a batch of
segments: decompression). The C engine (cpu.CpuModel), the PyTorch reference
(reference.IntModel) and the Triton kernels (triton_backend.TritonModel) compute the same
integers. `check_bounds` proves, from the file alone, that they can: every float32 partial sum
is an integer below 2^24 and no int32 value overflows (docs/DESIGN.md §2).
"""

from __future__ import annotations

import numpy as np

from tzip.engine.config import ModelConfig, ring_slots
from tzip.engine.constants import EXP_BITS, FP32_EXACT, INT32_LIMIT, PROB_BITS, SCORE_LIMIT
from tzip.engine.modelfile import IntModelFile
from tzip.format.layout import N_FEATURES, Layout

QUERY_CHUNK = 32  # queries sharing one band of keys in the reference's parallel pass (part of its bound)


class Model:
    """An integer model file made ready to run on one engine."""

    on_cpu = True  # False for the GPU backend (one process drives the GPU; no C engine)

    def __init__(self, mf: IntModelFile):
        self.file = mf
        self.model_id = mf.model_id
        self.cfg = ModelConfig(**mf.config)
        self.ring = ring_slots(self.cfg)
        check_bounds(mf, self.cfg, self.ring)

    def decoder(self, layouts: list[Layout], max_len: int):
        """An incremental pass over a batch of segments: step_numpy() -> [B, 256], push(bytes)."""
        raise NotImplementedError

    def segment_frequencies(self, symbols: np.ndarray, layout: Layout,
                            rows: tuple[int, int] | None = None, hints: np.ndarray | None = None) -> np.ndarray:
        """Teacher-forced frequencies [T, 256] (int32) of one segment; with rows = (row0, n) only
        those n positions' (the same integers), so a caller bounds its memory. hints: the whole
        segment's (stages.hints.hints_for) for a model with hint slots; computed where not given."""
        raise NotImplementedError


def check_bounds(mf: IntModelFile, cfg: ModelConfig, ring: int) -> None:
    """Raise ValueError unless every engine computes this model's frequencies exactly."""
    t = mf.tensors
    hd = cfg.d_model // cfg.n_heads
    keys = cfg.window + ring + QUERY_CHUNK
    fp32 = {
        "scores (int8 x int8 over head dim)": hd * 127 * 127,
        "probs x values (sum p <= 2^15)": 127 * 2**PROB_BITS,
    }
    for what, bound in fp32.items():
        if bound >= FP32_EXACT:
            raise ValueError(f"model exceeds the exact float32 bound in {what}: {bound}")
    if 2**EXP_BITS * max(keys, 256) >= FP32_EXACT:
        raise ValueError("softmax sums would leave float32's exact range")

    def check(name: str, bound: int, what: str, out_limit: int | None = None) -> None:
        """bound: the largest |accumulator| (int8 inputs are at most 127 in magnitude)."""
        mult, shift = (np.asarray(t[f"{name}.{k}"]).astype(np.int64) for k in ("mult", "shift"))
        if (shift < 1).any() or (shift > 30).any():
            raise ValueError(f"model exceeds the int32 requantisation bound in {what}")
        worst = mult * bound + (np.int64(1) << (shift - 1))
        if (worst > INT32_LIMIT).any():
            raise ValueError(f"model exceeds the int32 requantisation bound in {what}")
        if out_limit is not None and ((worst >> shift) >= out_limit).any():
            raise ValueError(f"model's {what} can exceed {out_limit}")

    for i in range(cfg.n_layers):
        L = f"layers.{i}"
        check(f"{L}.qkv", cfg.d_model * 127 * 127, f"layer {i} qkv")
        check(f"{L}.proj", cfg.d_model * 127 * 127, f"layer {i} proj")
        check(f"{L}.up", cfg.d_model * 127 * 127, f"layer {i} up")
        check(f"{L}.down", cfg.d_ff * 127 * 127, f"layer {i} down")
        check(f"{L}.score", hd * 127 * 127, f"layer {i} scores", SCORE_LIMIT)
        check(f"{L}.attn_out", 127 * 2**PROB_BITS, f"layer {i} attention output")
        reach = cfg.window + cfg.block * (ring + 1)
        if int(np.abs(np.asarray(t[f"{L}.alibi"]).astype(np.int64)).max()) * reach >= SCORE_LIMIT:
            raise ValueError("ALiBi bias out of range")
    check("head", cfg.d_model * 127 * 127, "output head", SCORE_LIMIT)
    features, phase = (np.abs(np.asarray(t[k]).astype(np.int64)) for k in ("embed.features", "embed.phase"))
    hints = np.abs(np.asarray(t["embed.hints"]).astype(np.int64)) if cfg.hint_slots else np.zeros(1, np.int64)
    if cfg.hint_slots and np.asarray(t["embed.hints"]).shape != (cfg.hint_slots, 257, cfg.d_model):
        raise ValueError("bad hint tables")
    if int(features.max()) * N_FEATURES + int(hints.max()) * cfg.hint_slots + int(phase.max()) >= 2**30:
        raise ValueError("embeddings out of range")
    exp_table = np.asarray(t["exp_table"]).astype(np.int64)
    if exp_table.shape != (256,) or int(exp_table.max()) > 2**EXP_BITS or int(exp_table.min()) < 0:
        raise ValueError("bad exp table")
