"""Export a trained float model to the integer model file the engine runs.

Floats are used here (building multipliers and tables), never at inference. Every requantisation
is a per-channel integer multiplier with one shared right shift (gemmlowp style).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .model import NORM_SCALE, RES_BITS, TzipModel
from .modelfile import IntModelFile

LOG2E = 1.0 / math.log(2.0)
SCORE_FRAC = 8  # attention scores and logits are in log2 units with 8 fractional bits
EXP_BITS = 24  # exp table: round(2^24 * 2^(-f/256))
PROB_BITS = 15  # attention probabilities sum to ~2^15
MULT_BITS = 22  # requant multipliers have ~22 significant bits


def multiplier(ratio) -> tuple[np.ndarray, int]:
    """Integer multipliers and one shift with mult / 2^shift ~= ratio (per channel)."""
    r = np.atleast_1d(np.asarray(ratio, dtype=np.float64))
    top = float(r.max())
    shift = int(np.clip(MULT_BITS - math.ceil(math.log2(top)), 1, 62))
    return np.round(r * 2.0**shift).astype(np.int64), shift


def quantize_rows(w: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    w = w.detach().double()
    scale = w.abs().amax(1).clamp(min=1e-8) / 127
    q = torch.clamp(torch.round(w / scale[:, None]), -127, 127)
    return q.to(torch.int8).numpy(), scale.numpy()


def exp_table() -> np.ndarray:
    f = np.arange(256, dtype=np.float64)
    return np.round(2.0**EXP_BITS * 2.0 ** (-f / 256)).astype(np.int64)


def export(model: TzipModel, meta: dict | None = None) -> IntModelFile:
    cfg = model.cfg
    d, nh = cfg.d_model, cfg.n_heads
    hd = d // nh
    s_norm, s_res = 1.0 / NORM_SCALE, 2.0**-RES_BITS
    t: dict[str, np.ndarray] = {}

    def linear(name: str, weight: torch.Tensor, s_in: float, s_out) -> None:
        q, sw = quantize_rows(weight)
        mult, shift = multiplier(s_in * sw / np.asarray(s_out, dtype=np.float64))
        t[f"{name}.w"] = q
        t[f"{name}.mult"] = mult
        t[f"{name}.shift"] = np.array([shift], np.int64)

    feats = [emb.weight.detach().double() for emb in model.features]
    if not cfg.use_features:
        feats = [feats[0]] + [torch.zeros_like(f) for f in feats[1:]]
    t["embed.features"] = torch.round(torch.stack(feats) / s_res).to(torch.int32).numpy()
    t["embed.phase"] = torch.round(model.phase.weight.detach().double() / s_res).to(torch.int32).numpy()
    slopes = model.slopes.double().numpy()
    for i, blk in enumerate(model.blocks):
        p = f"layers.{i}."
        s_q, s_k, s_v = (float(a.scale()) for a in (blk.q_act, blk.k_act, blk.v_act))
        s_o, s_a = float(blk.o_act.scale()), float(blk.ff_act.scale())
        s_qkv = np.repeat([s_q, s_k, s_v], d)
        linear(p + "qkv", blk.qkv.effective_weight(), s_norm, s_qkv)
        linear(p + "proj", blk.proj.effective_weight(), s_o, s_res)
        linear(p + "up", blk.up.effective_weight(), s_norm, s_a)
        linear(p + "down", blk.down.effective_weight(), s_a, s_res)
        mult, shift = multiplier(s_q * s_k / math.sqrt(hd) * LOG2E * 2**SCORE_FRAC)
        t[p + "score.mult"], t[p + "score.shift"] = mult, np.array([shift], np.int64)
        mult, shift = multiplier(s_v * 2.0**-PROB_BITS / s_o)
        t[p + "attn_out.mult"], t[p + "attn_out.shift"] = mult, np.array([shift], np.int64)
        t[p + "alibi"] = np.round(slopes * LOG2E * 2**SCORE_FRAC).astype(np.int64)
    linear("head", model.head.effective_weight(), s_norm, 1.0 / (LOG2E * 2**SCORE_FRAC))
    t["exp_table"] = exp_table()
    return IntModelFile(cfg.to_dict(), t, meta or {})
