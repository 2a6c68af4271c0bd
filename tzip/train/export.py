"""Export a trained float model to the integer model file the engine runs.

Floats are used here (building multipliers and tables), never at inference. Every requantisation
is a per-channel integer multiplier and right shift (gemmlowp style), sized so that the product
with the largest accumulator the layer can produce stays below 2^31: the engine runs it in int32.

import_model is the inverse: the float model of an integer model file, so training can go on from
a file alone (the shipped models' checkpoints are not kept).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from tzip.engine.config import ModelConfig
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
    mult, shift = _mult_shift(r, bound)
    if np.any(shift < 1) or np.any(mult < 1):
        raise ValueError("requantisation ratio too large for int32")
    return mult.astype(np.int32), shift.astype(np.int32)


def _mult_shift(r: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """multiplier() without its range checks (int64 results), for ratios already known to be in range."""
    shift = np.floor(np.log2(INT32_LIMIT / (r * bound))).astype(np.int64)
    shift = np.minimum(shift, 30)
    mult = np.round(r * 2.0**shift).astype(np.int64)
    while True:  # rounding can push mult*bound past the limit; step back one bit where it does
        over = mult * bound + (1 << (shift - 1)) > INT32_LIMIT
        if not over.any():
            break
        shift = np.where(over, shift - 1, shift)
        mult = np.round(r * 2.0**shift).astype(np.int64)
    return mult, shift


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
    if cfg.hint_slots:  # the stages' predictions (§8): [hint_slots, ABSENT + 1, d], rounded as the features
        hints = torch.stack([emb.weight.detach().double() for emb in model.hints])
        t["embed.hints"] = torch.round(hints / s_res).to(torch.int32).numpy()
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


def act_scale(amax: np.ndarray) -> np.ndarray:
    """ActQuant.scale() of float32 EMA values, exactly as export reads it (float32 arithmetic)."""
    amax32 = torch.as_tensor(np.asarray(amax, dtype=np.float32))
    return (amax32.clamp(min=1e-4) / 127).double().numpy()


def fit_float32(mult: np.ndarray, shift: np.ndarray, bound: int, ratio_of, guess: np.ndarray) -> np.ndarray:
    """Float32 values x (one per channel) near `guess` whose export ratio, ratio_of(x), gives exactly
    the file's (mult, shift).

    `guess` is what makes the ratio mult / 2^shift; float rounding (of x to float32, of the scales
    export derives from it) can move the ratio across a rounding boundary, so candidates are tried
    across the ratios that round to `mult` (+-1/2 of its last bit), nearest first.
    """
    mult, shift = mult.astype(np.int64), shift.astype(np.int64)
    guess = np.broadcast_to(np.asarray(guess, dtype=np.float64), mult.shape)
    found = np.full(mult.shape, np.nan, dtype=np.float32)
    for k in sorted(np.linspace(-0.5, 0.5, 257), key=abs):
        x = (guess * (1 + k / mult)).astype(np.float32)
        m, sh = _mult_shift(np.asarray(ratio_of(x), dtype=np.float64), bound)
        hit = np.isnan(found) & (m == mult) & (sh == shift)
        found[hit] = x[hit]
        if not np.isnan(found).any():
            return found
    raise ValueError(f"no float32 value reproduces requantisation {mult[np.isnan(found)][:4]} "
                     f">> {shift[np.isnan(found)][:4]}")


def import_model(mf: IntModelFile) -> TzipModel:
    """The float model whose export is `mf` again, tensor for tensor: the inverse of export().

    Weights become q * row scale, embeddings q * 2^-RES_BITS, RMSNorm gains 1. The activation
    scales have gauge freedom — a file fixes only s_q * s_k (score), s_v / s_o (attention output)
    and each row scale relative to its layer's input and output scales — so each pair of factors
    is balanced: the gauge equalises the Frobenius norms of the matrices on either side of it (q
    and k rows; v rows and proj; up and down), which is where weight decay drives a product of
    two factors. Every float32 scale is then chosen so that export's float64 ratios re-derive each
    multiplier and shift exactly (fit_float32), and the result is checked by exporting it again,
    since training resumes from this model. Only ActQuant EMAs are set; nothing else is learned.
    """
    cfg = ModelConfig(**mf.config)
    t = {k: np.asarray(v) for k, v in mf.tensors.items()}
    d, hd, kv = cfg.d_model, cfg.d_model // cfg.n_heads, cfg.kv_dim
    s_norm, s_res = 1.0 / NORM_SCALE, 2.0**-RES_BITS
    model = TzipModel(cfg).eval()

    def ratio(name: str) -> np.ndarray:
        return t[f"{name}.mult"].astype(np.float64) * 2.0 ** -t[f"{name}.shift"].astype(np.float64)

    def sq_norm(name: str, lo: int = 0, hi: int | None = None) -> float:
        """Sum over rows lo..hi of (ratio * |q row|)^2: their squared norm up to the gauge factor."""
        q = t[f"{name}.w"].astype(np.float64)
        r = np.broadcast_to(ratio(name), q.shape[:1])
        return float((r**2 * (q**2).sum(1))[lo:hi].sum())

    def embedding(name: str) -> torch.Tensor:
        q = t[name].astype(np.int64)
        if np.abs(q).max(initial=0) >= 2**24:  # beyond float32's exact integers
            raise ValueError(f"{name} holds values a float model cannot represent exactly")
        return torch.from_numpy(q * s_res).float()

    def set_linear(layer: nn.Linear, name: str, s_in: float, s_out) -> None:
        """Rows q * rowmax / 127, rowmax fitted so that export re-derives the file's multipliers."""
        q = t[f"{name}.w"].astype(np.float64)
        s_out = np.broadcast_to(np.asarray(s_out, dtype=np.float64), q.shape[:1])
        mult, shift = t[f"{name}.mult"], t[f"{name}.shift"]
        rowmax = fit_float32(mult, shift, q.shape[1] * 127 * 127,
                             lambda x: s_in * (x.astype(np.float64) / 127) / s_out, 127 * ratio(name) * s_out / s_in)
        w = (q * (rowmax.astype(np.float64) / 127)[:, None]).astype(np.float32)
        top = np.abs(q) == 127  # the row's largest entries carry rowmax itself, as quantize_rows reads it
        w[top] = (np.sign(q) * rowmax[:, None])[top]
        layer.weight.copy_(torch.from_numpy(w))

    def set_block(blk: nn.Module, p: str) -> None:
        a_q, a_k, a_v = (sq_norm(p + "qkv", lo, lo + n) for lo, n in ((0, d), (d, kv), (d + kv, kv)))
        score_k = math.sqrt(hd) / (LOG2E * 2**SCORE_FRAC)  # s_q * s_k = score ratio * score_k
        r_score, r_attn = float(ratio(p + "score")[0]), float(ratio(p + "attn_out")[0])
        s_q = math.sqrt(r_score * score_k) * (a_k / a_q) ** 0.25
        s_v = math.sqrt(s_norm * s_res * r_attn * 2**PROB_BITS) * (sq_norm(p + "proj") / a_v) ** 0.25
        s_a = math.sqrt(s_norm * s_res) * (sq_norm(p + "down") / sq_norm(p + "up")) ** 0.25
        for act, s in ((blk.q_act, s_q), (blk.v_act, s_v), (blk.ff_act, s_a)):
            act.amax.fill_(float(np.float32(127 * s)))
        # the scales as export reads them back from the float32 EMAs
        s_q, s_v, s_a = (float(act_scale(a.amax.numpy())) for a in (blk.q_act, blk.v_act, blk.ff_act))
        amax_k = fit_float32(t[p + "score.mult"], t[p + "score.shift"], hd * 127 * 127,
                             lambda x: s_q * act_scale(x) / math.sqrt(hd) * LOG2E * 2**SCORE_FRAC,
                             127 * r_score * score_k / s_q)
        amax_o = fit_float32(t[p + "attn_out.mult"], t[p + "attn_out.shift"], 127 * 2**PROB_BITS,
                             lambda x: s_v * 2.0**-PROB_BITS / act_scale(x), 127 * s_v * 2.0**-PROB_BITS / r_attn)
        blk.k_act.amax.fill_(float(amax_k[0]))
        blk.o_act.amax.fill_(float(amax_o[0]))
        s_k, s_o = float(act_scale(amax_k)[0]), float(act_scale(amax_o)[0])
        set_linear(blk.qkv, p + "qkv", s_norm, np.repeat([s_q, s_k, s_v], [d, kv, kv]))
        set_linear(blk.proj, p + "proj", s_o, s_res)
        set_linear(blk.up, p + "up", s_norm, s_a)
        set_linear(blk.down, p + "down", s_a, s_res)

    with torch.no_grad():
        for slot, emb in enumerate(model.features):
            emb.weight.copy_(embedding("embed.features")[slot])
        model.phase.weight.copy_(embedding("embed.phase"))
        if cfg.hint_slots:
            for slot, emb in enumerate(model.hints):
                emb.weight.copy_(embedding("embed.hints")[slot])
        for g in [model.gain_f, *(p for blk in model.blocks for p in (blk.gain1, blk.gain2))]:
            g.fill_(1.0)
        for i, blk in enumerate(model.blocks):
            set_block(blk, f"layers.{i}.")
        set_linear(model.head, "head", s_norm, 1.0 / (LOG2E * 2**SCORE_FRAC))
    again = export(model).tensors
    differ = sorted(k for k in set(t) | set(again)
                    if k not in t or k not in again or not np.array_equal(t[k], again[k]))
    if differ:
        raise ValueError(f"model file cannot be imported exactly: {', '.join(differ[:6])} differ on re-export")
    return model


def export_checkpoint(ckpt_path: str, out: str) -> str:
    """Export a training checkpoint (tzip.train's ckpt.pt) to an integer model file; returns its id."""
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
