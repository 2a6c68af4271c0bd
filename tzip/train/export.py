"""Export a trained float model to the integer model file the engine runs.

Floats are used here (building multipliers and tables), never at inference. Every requantisation
is a per-channel integer multiplier and right shift (gemmlowp style), sized so that the product
with the largest accumulator the layer can produce stays below 2^31: the engine runs it in int32.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from tzip.engine.constants import EXP_BITS, INT32_LIMIT, NORM_SCALE, PROB_BITS, RES_BITS, SCORE_FRAC
from tzip.engine.modelfile import IntModelFile
from tzip.train.model import TzipModel

LOG2E = 1.0 / math.log(2.0)


def multiplier(ratio, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mult, shift) with mult / 2^shift ~= ratio and mult*bound + 2^(shift-1) < 2^31.

    bound is the largest |accumulator| the layer can produce, so the engine's int32 product never
    overflows; the multiplier keeps as many bits as that allows.
    """
    r = np.atleast_1d(np.asarray(ratio, dtype=np.float64))
    if np.any(r <= 0) or np.any(r * bound >= 2**30):
        raise ValueError("requantisation ratio out of range for int32")
    shift = np.floor(np.log2(INT32_LIMIT / (r * bound))).astype(np.int64)
    shift = np.minimum(shift, 30)
    mult = np.round(r * 2.0**shift).astype(np.int64)
    while True:  # rounding can push mult*bound past the limit; step back one bit where it does
        over = mult * bound + (1 << (shift - 1)) > INT32_LIMIT
        if not over.any():
            break
        shift = np.where(over, shift - 1, shift)
        mult = np.round(r * 2.0**shift).astype(np.int64)
    if np.any(shift < 1) or np.any(mult < 1):
        raise ValueError("requantisation ratio too large for int32")
    return mult.astype(np.int32), shift.astype(np.int32)


def quantize_rows(w: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    w = w.detach().double()
    scale = w.abs().amax(1).clamp(min=1e-8) / 127
    q = torch.clamp(torch.round(w / scale[:, None]), -127, 127)
    return q.to(torch.int8).numpy(), scale.numpy()


def exp_table() -> np.ndarray:
    f = np.arange(256, dtype=np.float64)
    return np.round(2.0**EXP_BITS * 2.0 ** (-f / 256)).astype(np.int32)


def export(model: TzipModel, meta: dict | None = None) -> IntModelFile:
    cfg = model.cfg
    d, nh = cfg.d_model, cfg.n_heads
    hd = d // nh
    s_norm, s_res = 1.0 / NORM_SCALE, 2.0**-RES_BITS
    t: dict[str, np.ndarray] = {}

    def requant(name: str, ratio, bound: int) -> None:
        t[f"{name}.mult"], t[f"{name}.shift"] = multiplier(ratio, bound)

    def linear(name: str, weight: torch.Tensor, s_in: float, s_out) -> None:
        q, sw = quantize_rows(weight)
        t[f"{name}.w"] = q
        requant(name, s_in * sw / np.asarray(s_out, dtype=np.float64), q.shape[1] * 127 * 127)

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
        s_qkv = np.repeat([s_q, s_k, s_v], [d, cfg.kv_dim, cfg.kv_dim])
        linear(p + "qkv", blk.qkv.effective_weight(), s_norm, s_qkv)
        linear(p + "proj", blk.proj.effective_weight(), s_o, s_res)
        linear(p + "up", blk.up.effective_weight(), s_norm, s_a)
        linear(p + "down", blk.down.effective_weight(), s_a, s_res)
        requant(p + "score", s_q * s_k / math.sqrt(hd) * LOG2E * 2**SCORE_FRAC, hd * 127 * 127)
        requant(p + "attn_out", s_v * 2.0**-PROB_BITS / s_o, 127 * 2**PROB_BITS)
        t[p + "alibi"] = np.round(slopes * LOG2E * 2**SCORE_FRAC).astype(np.int32)
    linear("head", model.head.effective_weight(), s_norm, 1.0 / (LOG2E * 2**SCORE_FRAC))
    t["exp_table"] = exp_table()
    return IntModelFile(cfg.to_dict(), t, meta or {})


def export_checkpoint(ckpt_path: str, out: str) -> str:
    """Export a training checkpoint (tzip.train's ckpt.pt) to an integer model file; returns its id."""
    from tzip.engine.config import ModelConfig

    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = TzipModel(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    model.eval()
    train_cfg = state.get("train_config", {})
    meta = {"tokens": state["tokens"], "steps": state["step"], "wall_s": round(state["wall"]),
            "device": train_cfg.get("device", ""), "shard": Path(train_cfg.get("shard", "")).name}
    return export(model, meta).save(out)


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Export a training checkpoint to a tzip model file.")
    ap.add_argument("ckpt")
    ap.add_argument("out")
    a = ap.parse_args(argv)
    print(f"{a.out}: id {export_checkpoint(a.ckpt, a.out)}")


if __name__ == "__main__":
    main()
