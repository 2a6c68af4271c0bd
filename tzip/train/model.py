"""The float byte Transformer used for training: sliding-window attention + compressive memory.

Quantisation-aware: every point where the integer engine rounds (norm outputs, weights,
activations, residual stream) is fake-quantised here with a straight-through estimator, so the
exported integer model (tzip/train/export.py, tzip/engine/reference.py) computes nearly the same function.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from tzip.engine.config import ModelConfig
from tzip.engine.constants import NORM_SCALE, RES_BITS
from tzip.engine.features import visible_slots
from tzip.format.layout import ABSENT, N_FEATURES, PHASES


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def fake_quant(x: torch.Tensor, scale: torch.Tensor | float, lo: int, hi: int) -> torch.Tensor:
    return torch.clamp(round_ste(x / scale), lo, hi) * scale


def quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per output channel (rows), as exported."""
    scale = w.detach().abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127
    return fake_quant(w, scale, -127, 127)


def quant_norm(h: torch.Tensor) -> torch.Tensor:
    """Integer RMSNorm mirror: unit-RMS output quantised to int8 with step 1/NORM_SCALE."""
    rms = torch.sqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
    return fake_quant(h / rms, 1.0 / NORM_SCALE, -127, 127)


def quant_residual(h: torch.Tensor) -> torch.Tensor:
    return fake_quant(h, 2.0**-RES_BITS, -(2**20), 2**20)


class ActQuant(nn.Module):
    """Per-tensor int8 activation quantiser whose scale tracks an EMA of the max |x|."""

    def __init__(self, signed: bool = True):
        super().__init__()
        self.signed = signed
        self.register_buffer("amax", torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            cur = x.detach().abs().amax().float()
            self.amax.copy_(torch.where(self.amax == 0, cur, 0.99 * self.amax + 0.01 * cur))
        scale = self.scale()
        return fake_quant(x, scale, -127 if self.signed else 0, 127)

    def scale(self) -> torch.Tensor:
        return self.amax.clamp(min=1e-4) / 127


class QLinear(nn.Linear):
    """Linear layer with fake-quantised weights; `gain` is the preceding RMSNorm's gain, folded in."""

    def __init__(self, d_in: int, d_out: int, gain: nn.Parameter | None = None):
        super().__init__(d_in, d_out, bias=False)
        self.gain = gain
        nn.init.normal_(self.weight, std=0.02)

    def effective_weight(self) -> torch.Tensor:
        return self.weight * self.gain if self.gain is not None else self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, quant_weight(self.effective_weight()))


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi slopes (natural-log units per byte of distance), from 1/2 down to 1/256."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / n_heads) for h in range(n_heads)])


def attention_bias(t_len: int, cfg: ModelConfig, slopes: torch.Tensor) -> torch.Tensor:
    """Additive attention bias (ALiBi, -inf where invisible) for chunked local attention.

    Queries are cut into chunks of `window` positions; chunk j attends to the window keys of
    chunks j-1 and j plus all T//block memory slots. Returns [H, n_chunks, window, 2*window+S].
    """
    w, c = cfg.window, cfg.block
    n = t_len // w
    pos = torch.arange(t_len).view(n, w)
    kpos = pos[:, :1] - w + torch.arange(2 * w)  # [n, 2w]
    dist_win = pos[:, :, None] - kpos[:, None, :]
    vis_win = (dist_win >= 0) & (dist_win < w) & (kpos[:, None, :] >= 0)
    n_slots = t_len // c if cfg.use_memory else 0
    slot = torch.arange(n_slots)
    lo, hi = visible_slots(pos, w, c, cfg.mem_slots)
    vis_mem = (slot >= lo[..., None]) & (slot < hi[..., None])
    dist_mem = pos[..., None] - (slot * c + c // 2)
    dist = torch.cat([dist_win, dist_mem], -1).float()
    visible = torch.cat([vis_win, vis_mem], -1)
    bias = -slopes.view(-1, 1, 1, 1) * dist
    return bias.masked_fill(~visible, float("-inf"))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.gain1 = nn.Parameter(torch.ones(d))
        self.gain2 = nn.Parameter(torch.ones(d))
        self.qkv = QLinear(d, d + 2 * cfg.kv_dim, self.gain1)
        self.proj = QLinear(d, d)
        self.up = QLinear(d, cfg.d_ff, self.gain2)
        self.down = QLinear(cfg.d_ff, d)
        nn.init.normal_(self.proj.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))
        nn.init.normal_(self.down.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))
        self.q_act, self.k_act, self.v_act = ActQuant(), ActQuant(), ActQuant()
        self.o_act, self.ff_act = ActQuant(), ActQuant(signed=False)

    def forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, t, d = h.shape
        nh, nkv, hd = cfg.n_heads, cfg.n_kv_heads, d // cfg.n_heads
        x = quant_norm(h)
        keys_in = x
        if cfg.use_memory:
            n_slots = t // cfg.block
            pooled = x[:, : n_slots * cfg.block].reshape(b, n_slots, cfg.block, d).mean(2)
            keys_in = torch.cat([x, round_ste(pooled * NORM_SCALE) / NORM_SCALE], 1)
        w_q, w_k, w_v = quant_weight(self.qkv.effective_weight()).split([d, cfg.kv_dim, cfg.kv_dim])
        q = self.q_act(F.linear(x, w_q))
        k = self.k_act(F.linear(keys_in, w_k))
        v = self.v_act(F.linear(keys_in, w_v))
        w, n = cfg.window, t // cfg.window
        heads = lambda z, m: z.view(b, -1, m, hd).transpose(1, 2)  # noqa: E731  [B,heads,L,hd]
        q, k, v = heads(q, nh), heads(k, nkv), heads(v, nkv)

        def local(z: torch.Tensor) -> torch.Tensor:  # [B,H,n,2w+S,hd]: previous+own chunk, memory
            win = z[:, :, :t].view(b, nkv, n, w, hd)
            prev = F.pad(win, (0, 0, 0, 0, 1, 0))[:, :, :-1]
            mem = z[:, :, t:, None].transpose(2, 3).expand(b, nkv, n, -1, hd)
            kv = torch.cat([prev, win, mem], 3)
            return kv.repeat_interleave(nh // nkv, dim=1) if nkv != nh else kv  # query head h uses kv head h // G

        y = F.scaled_dot_product_attention(q.view(b, nh, n, w, hd), local(k), local(v), attn_mask=bias)
        y = self.o_act(y.reshape(b, nh, t, hd).transpose(1, 2).reshape(b, t, d))
        h = quant_residual(h + self.proj(y))
        a = self.ff_act(F.relu(self.up(quant_norm(h))))
        return quant_residual(h + self.down(a))


class TzipModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.features = nn.ModuleList(nn.Embedding(ABSENT + 1, d) for _ in range(N_FEATURES))
        self.phase = nn.Embedding(4 * PHASES, d)
        for emb in [*self.features, self.phase]:
            nn.init.normal_(emb.weight, std=0.5 if emb is self.features[0] else 0.1)
        # The stages' predictions (§8), one table per hint slot. Zero at the start, so a model that
        # gains hints computes exactly what it computed without them until training moves them (and
        # made without a random draw, so a seed gives the same other weights with or without them).
        zeros = lambda: nn.Embedding.from_pretrained(torch.zeros(ABSENT + 1, d), freeze=False)  # noqa: E731
        self.hints = nn.ModuleList(zeros() for _ in range(cfg.hint_slots))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.gain_f = nn.Parameter(torch.ones(d))
        self.head = QLinear(d, 256, self.gain_f)
        self.register_buffer("slopes", alibi_slopes(cfg.n_heads), persistent=False)

    def embed(self, feats: torch.Tensor, phase: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        used = N_FEATURES if self.cfg.use_features else 1
        h = self.phase(phase)
        for slot in range(used):
            h = h + self.features[slot](feats[..., slot])
        for slot, table in enumerate(self.hints):
            h = h + table(hints[..., slot])
        return quant_residual(h)

    def forward(self, feats: torch.Tensor, phase: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """feats [B, T, N_FEATURES], phase [B, T], hints [B, T, hint_slots] -> logits [B, T, 256].

        hints (values 0..ABSENT) are required exactly when the model has hint slots. T is padded up
        to a multiple of the window internally (causal: padding changes nothing).
        """
        slots = self.cfg.hint_slots
        if (hints is None) != (slots == 0) or (hints is not None and hints.shape[-1] != slots):
            got = "none" if hints is None else hints.shape[-1]
            raise ValueError(f"model has {slots} hint slots but was given {got} hints per position")
        t = feats.shape[1]
        pad = -t % self.cfg.window
        if pad:
            feats = F.pad(feats, (0, 0, 0, pad), value=ABSENT)
            phase = F.pad(phase, (0, pad))
            if hints is not None:
                hints = F.pad(hints, (0, 0, 0, pad), value=ABSENT)
        bias = attention_bias(t + pad, self.cfg, self.slopes).to(feats.device)
        h = self.embed(feats, phase, hints)
        for blk in self.blocks:
            h = blk(h, bias)
        return self.head(quant_norm(h))[:, :t]

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
