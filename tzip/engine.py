"""The integer-only inference engine (PyTorch reference backend).

Every value is an integer. Matrix products run as float32 GEMMs on integer-valued tensors,
which is exact in any summation order because `IntModel.check_bounds` proves every partial
sum stays below 2^24 (DESIGN §2). The output is, per position, integer frequencies for the
256 byte values, each >= 1, summing to exactly 2^FREQ_BITS.

Two modes give identical frequencies: `parallel` (teacher-forced over whole segments, used to
compress) and `Decoder.step` (one byte per step over a batch of segments, used to decompress).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .context import ABSENT, N_FEATURES, PHASES, Layout, feature_indices, phase_indices, visible_slots
from .export import PROB_BITS, SCORE_FRAC
from .model import NORM_SCALE, ModelConfig
from .modelfile import IntModelFile

FREQ_BITS = 16
FP32_EXACT = 2**24
MASKED = -(2**40)  # score of an invisible key: exp2 of it is 0
RES_LIMIT = 2**20
HEAD_ROWS = 8192  # positions per slice of the output head in the parallel pass
ROW_BLOCK = 8192  # positions per block of a linear layer


@dataclass
class Requant:
    mult: torch.Tensor  # int64 [channels] or [1]
    shift: int

    def __call__(self, acc: torch.Tensor) -> torch.Tensor:
        return (acc * self.mult + (1 << (self.shift - 1))) >> self.shift


@dataclass
class Linear:
    weight: torch.Tensor  # float32 [in, out], integer-valued (int8 range)
    requant: Requant

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Row blocks keep the int64 temporaries of long sequences small (results are per row)."""
        if x.shape[-2] <= ROW_BLOCK:
            return self.requant((x.to(torch.float32) @ self.weight).to(torch.int64))
        return torch.cat([self(x[..., i : i + ROW_BLOCK, :]) for i in range(0, x.shape[-2], ROW_BLOCK)], -2)


@dataclass
class Layer:
    qkv: Linear
    proj: Linear
    up: Linear
    down: Linear
    score: Requant
    attn_out: Requant
    alibi: torch.Tensor  # int64 [H]


def isqrt(n: torch.Tensor) -> torch.Tensor:
    """floor(sqrt(n)) for int64 n >= 0, by Newton iteration from a power-of-two overestimate."""
    bits = torch.zeros_like(n)
    for s in (32, 16, 8, 4, 2, 1):
        bits = bits + s * ((n >> (bits + s)) > 0)
    x = torch.ones_like(n) << ((bits + 2) >> 1)
    for _ in range(7):
        x = torch.minimum(x, (x + n // x.clamp(min=1)) >> 1)  # x reaches 0 only for n = 0
    return x - (x * x > n).to(torch.int64)


def rmsnorm(h: torch.Tensor) -> torch.Tensor:
    """Integer RMSNorm: round(h * NORM_SCALE / rms(h)), clamped to int8. Gain is in the weights."""
    d = h.shape[-1]
    ms = ((h * h).sum(-1, keepdim=True) << 8) // d  # 256 * mean square
    rms16 = isqrt(ms).clamp(min=1)  # floor(16 * rms)
    x = (h * (2 * 16 * NORM_SCALE) + rms16) // (2 * rms16)
    return x.clamp(-127, 127)


class IntModel:
    """An integer model file made ready to run: tensors in the shapes the engine wants."""

    def __init__(self, mf: IntModelFile):
        self.file = mf
        self.model_id = mf.model_id
        self.cfg = ModelConfig(**mf.config)
        t = {k: torch.from_numpy(np.array(v)) for k, v in mf.tensors.items()}

        def requant(name: str) -> Requant:
            return Requant(t[f"{name}.mult"].long(), int(t[f"{name}.shift"][0]))

        def linear(name: str) -> Linear:
            return Linear(t[f"{name}.w"].to(torch.float32).T.contiguous(), requant(name))

        self.features = t["embed.features"].long()  # [N_FEATURES, 257, d]
        self.phase = t["embed.phase"].long()  # [4*PHASES, d]
        self.layers = [
            Layer(
                linear(f"layers.{i}.qkv"), linear(f"layers.{i}.proj"), linear(f"layers.{i}.up"),
                linear(f"layers.{i}.down"), requant(f"layers.{i}.score"),
                requant(f"layers.{i}.attn_out"), t[f"layers.{i}.alibi"].long(),
            )
            for i in range(self.cfg.n_layers)
        ]
        self.head = linear("head")
        self.exp_table = t["exp_table"].long()
        self.check_bounds()

    def check_bounds(self) -> None:
        """Prove every float32 partial sum is an integer below 2^24 (so any order is exact)."""
        cfg = self.cfg
        hd = cfg.d_model // cfg.n_heads
        keys = cfg.window + cfg.mem_slots
        worst = {
            "qkv/up/head (int8 x int8 over d_model)": cfg.d_model * 127 * 127,
            "down (uint7 x int8 over d_ff)": cfg.d_ff * 127 * 127,
            "proj (int8 x int8 over d_model)": cfg.d_model * 127 * 127,
            "scores (int8 x int8 over head dim)": hd * 127 * 127,
            "probs x values (sum p <= 2^15 + keys/2)": 127 * (2**PROB_BITS + keys),
        }
        for what, bound in worst.items():
            if bound >= FP32_EXACT:
                raise ValueError(f"model exceeds the exact float32 bound in {what}: {bound}")
        for lin in [self.head] + [x for L in self.layers for x in (L.qkv, L.proj, L.up, L.down)]:
            if lin.weight.abs().max() > 127:
                raise ValueError("weights must be int8")

    # -- shared pieces ---------------------------------------------------------------------
    def embed(self, feats: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        h = self.phase[phase]
        for slot in range(N_FEATURES):
            h = h + self.features[slot][feats[..., slot]]
        return h

    def exp2(self, zneg: torch.Tensor) -> torch.Tensor:
        """2^(-zneg / 2^SCORE_FRAC) * 2^24 for zneg >= 0: table for the fraction, shift for the rest."""
        return self.exp_table[zneg & 255] >> (zneg >> SCORE_FRAC).clamp(max=40)

    def softmax_weights(self, z: torch.Tensor) -> torch.Tensor:
        """Integer attention probabilities over the last axis, summing to ~2^PROB_BITS."""
        e = self.exp2(z.amax(-1, keepdim=True) - z)
        total = e.sum(-1, keepdim=True)
        return ((e << PROB_BITS) + (total >> 1)) // total

    def frequencies(self, h: torch.Tensor) -> torch.Tensor:
        """Final norm + head -> int32 frequencies [..., 256], each >= 1, summing to 2^FREQ_BITS."""
        z = self.head(rmsnorm(h))
        e = self.exp2(z.amax(-1, keepdim=True) - z)
        total = e.sum(-1, keepdim=True)
        freq = 1 + (e * ((1 << FREQ_BITS) - 256)) // total
        deficit = (1 << FREQ_BITS) - freq.sum(-1, keepdim=True)
        top = e.argmax(-1, keepdim=True)
        freq.scatter_add_(-1, top, deficit)
        return freq.to(torch.int32)

    def mlp(self, layer: Layer, h: torch.Tensor) -> torch.Tensor:
        a = layer.up(rmsnorm(h)).clamp(0, 127)
        return (h + layer.down(a)).clamp(-RES_LIMIT, RES_LIMIT)

    def qkv(self, layer: Layer, x: torch.Tensor):
        d = self.cfg.d_model
        out = layer.qkv(x).clamp(-127, 127)
        return out[..., :d], out[..., d : 2 * d], out[..., 2 * d :]

    def kv(self, layer: Layer, x: torch.Tensor):
        """Keys and values of memory slots: the same projection as the window keys/values."""
        d = self.cfg.d_model
        w = layer.qkv.weight[:, d:]
        acc = (x.to(torch.float32) @ w).to(torch.int64)
        rq = Requant(layer.qkv.requant.mult[d:], layer.qkv.requant.shift)
        out = rq(acc).clamp(-127, 127)
        return out[..., :d], out[..., d:]

    def pool(self, block_sum: torch.Tensor) -> torch.Tensor:
        c = self.cfg.block
        return torch.div(block_sum + c // 2, c, rounding_mode="floor")

    def bias(self, dist: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """ALiBi bias in score units, MASKED where invisible: [H, Q, K] (same in every layer)."""
        b = -self.layers[0].alibi[:, None, None] * dist
        return torch.where(visible, b, MASKED)

    def attend(self, layer: Layer, q, k, v, bias) -> torch.Tensor:
        """q [B,H,Q,hd], k/v [B,H,K,hd], bias [H,Q,K] -> int8 output [B,Q,d]."""
        s = (q.to(torch.float32) @ k.to(torch.float32).transpose(-1, -2)).to(torch.int64)
        p = self.softmax_weights(layer.score(s) + bias)
        o = (p.to(torch.float32) @ v.to(torch.float32)).to(torch.int64)
        o = layer.attn_out(o).clamp(-127, 127)
        b, nh, nq, hd = o.shape
        return o.transpose(1, 2).reshape(b, nq, nh * hd)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, d] -> [B, H, T, hd]."""
        b, t, d = x.shape
        return x.view(b, t, self.cfg.n_heads, d // self.cfg.n_heads).transpose(1, 2)

    # -- compress: teacher-forced pass over whole segments ------------------------------------
    def parallel(self, data: torch.Tensor, layouts: list[Layout], chunk: int = 64) -> torch.Tensor:
        """data [B, T] uint8 (rows padded at the end) -> frequencies [B, T, 256] int32."""
        cfg = self.cfg
        b, t_len = data.shape
        feats = torch.stack([feature_indices(data[i], lay) for i, lay in enumerate(layouts)])
        pos = torch.arange(t_len)
        phase = torch.stack([phase_indices(pos, lay) for lay in layouts])
        h = self.embed(feats, phase)
        c, n_blocks = cfg.block, (t_len // cfg.block if cfg.use_memory else 0)
        chunks = []  # (start, end, first window key, memory slot range, bias) per query chunk
        biases: dict[tuple, torch.Tensor] = {}  # steady-state chunks share one bias pattern
        for s in range(0, t_len, chunk):
            e = min(s + chunk, t_len)
            ks = max(0, s - cfg.window + 1)
            qpos, kpos = pos[s:e], pos[ks:e]
            lo, hi = visible_slots(qpos, cfg.window, c, cfg.mem_slots)
            m0, m1 = (int(lo.min()), int(hi.max())) if n_blocks else (0, 0)
            key = (e - s, s - ks, m1 - m0, s - m0 * c, tuple((lo - m0).tolist()), tuple((hi - m0).tolist()))
            if key not in biases:
                dist_w = qpos[:, None] - kpos[None, :]
                vis_w = (dist_w >= 0) & (dist_w < cfg.window)
                slot = torch.arange(m0, m1)
                dist_m = qpos[:, None] - (slot[None, :] * c + c // 2)
                vis_m = (slot[None, :] >= lo[:, None]) & (slot[None, :] < hi[:, None])
                biases[key] = self.bias(torch.cat([dist_w, dist_m], 1), torch.cat([vis_w, vis_m], 1))
            chunks.append((s, e, ks, m0, m1, biases[key]))
        for layer in self.layers:
            x = rmsnorm(h)
            q, k, v = (self.heads(z) for z in self.qkv(layer, x))
            pooled = self.pool(x[:, : n_blocks * c].reshape(b, n_blocks, c, cfg.d_model).sum(2))
            km, vm = (self.heads(z) for z in self.kv(layer, pooled))
            outs = [
                self.attend(layer, q[:, :, s:e], torch.cat([k[:, :, ks:e], km[:, :, m0:m1]], 2),
                            torch.cat([v[:, :, ks:e], vm[:, :, m0:m1]], 2), bias)
                for s, e, ks, m0, m1, bias in chunks
            ]
            h = (h + layer.proj(torch.cat(outs, 1))).clamp(-RES_LIMIT, RES_LIMIT)
            h = self.mlp(layer, h)
        rows = max(1, HEAD_ROWS // b)  # the head's [.., 256] int64 temporaries, a slice at a time
        return torch.cat([self.frequencies(h[:, i : i + rows]) for i in range(0, t_len, rows)], 1)


class Decoder:
    """Incremental pass: one byte per step for a batch of segments, with window and memory caches.

    All segments advance together (position t is the same for every row), so each step is a
    real matrix product over the batch; rows past their segment's end just carry on unused.
    """

    def __init__(self, model: IntModel, layouts: list[Layout], max_len: int):
        cfg = model.cfg
        self.m, self.cfg, self.t = model, cfg, 0
        b, nh, hd = len(layouts), cfg.n_heads, cfg.d_model // cfg.n_heads
        self.history = torch.zeros(b, max_len + 1, dtype=torch.long)
        self.offsets = torch.tensor([lay.offsets for lay in layouts], dtype=torch.long)
        self.modality = torch.tensor([lay.modality for lay in layouts], dtype=torch.long)
        self.period = torch.tensor([lay.period for lay in layouts], dtype=torch.long)
        self.ring = cfg.mem_slots + cfg.window // cfg.block + 2
        zeros = lambda *s: torch.zeros(*s, dtype=torch.int64)  # noqa: E731
        self.k = [zeros(b, nh, cfg.window, hd) for _ in model.layers]
        self.v = [zeros(b, nh, cfg.window, hd) for _ in model.layers]
        self.km = [zeros(b, nh, self.ring, hd) for _ in model.layers]
        self.vm = [zeros(b, nh, self.ring, hd) for _ in model.layers]
        self.block_sum = [zeros(b, cfg.d_model) for _ in model.layers]

    def features(self) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.t
        src = t - self.offsets  # [B, N_FEATURES]
        ok = (self.offsets > 0) & (src >= 0)
        feats = torch.where(ok, self.history.gather(1, src.clamp(min=0)), ABSENT)
        phase = self.modality * PHASES + t % self.period
        return feats, phase

    def step(self) -> torch.Tensor:
        """Frequencies [B, 256] for position t, given bytes 0..t-1 pushed with `push`."""
        m, cfg, t = self.m, self.cfg, self.t
        c = cfg.block
        feats, phase = self.features()
        h = m.embed(feats, phase)  # [B, d]
        w0 = max(0, t - cfg.window + 1)
        kpos = torch.arange(w0, t + 1)
        lo, hi = visible_slots(t, cfg.window, c, cfg.mem_slots) if cfg.use_memory else (0, 0)
        slots = torch.arange(lo, hi)
        dist = torch.cat([t - kpos, t - (slots * c + c // 2)])[None, :]
        bias = m.bias(dist, torch.ones_like(dist, dtype=torch.bool))
        for i, layer in enumerate(m.layers):
            x = rmsnorm(h)
            q, k, v = m.qkv(layer, x)
            b, nh = x.shape[0], cfg.n_heads
            self.k[i][:, :, t % cfg.window] = k.view(b, nh, -1)
            self.v[i][:, :, t % cfg.window] = v.view(b, nh, -1)
            if cfg.use_memory:
                self.block_sum[i] += x
                if (t + 1) % c == 0:
                    km, vm = m.kv(layer, m.pool(self.block_sum[i]))
                    slot = (t + 1) // c - 1
                    self.km[i][:, :, slot % self.ring] = km.view(b, nh, -1)
                    self.vm[i][:, :, slot % self.ring] = vm.view(b, nh, -1)
                    self.block_sum[i].zero_()
            wi, si = kpos % cfg.window, slots % self.ring
            keys = torch.cat([self.k[i][:, :, wi], self.km[i][:, :, si]], 2)
            vals = torch.cat([self.v[i][:, :, wi], self.vm[i][:, :, si]], 2)
            o = m.attend(layer, q.view(b, nh, 1, -1), keys, vals, bias)[:, 0]
            h = (h + layer.proj(o)).clamp(-RES_LIMIT, RES_LIMIT)
            h = m.mlp(layer, h)
        return m.frequencies(h)

    def push(self, symbols: torch.Tensor) -> None:
        """Record the bytes decoded at position t and advance to t + 1."""
        self.history[:, self.t] = symbols.long()
        self.t += 1
