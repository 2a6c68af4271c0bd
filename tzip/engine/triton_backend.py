"""Triton backend of the integer engine: the same integers as tzip/engine/reference.py, from GPU kernels.

Kernels (all integer-exact, docs/DESIGN.md §2):
- `linear_kernel`: int8 x int8 -> int32 `tl.dot`, fused per-channel int32 requantisation and clamp;
- `rmsnorm_kernel`: the engine's float64-on-integers RMSNorm (float64 sqrt and division are
  correctly rounded in PTX, sqrt.rn.f64 and div.rn.f64, so every step is exact as on the CPU);
- `attention_kernel`: sliding window + compressive memory for a block of queries: int8 q.k by
  `tl.dot`, score requantisation, ALiBi bias and visibility computed from positions, the integer
  softmax through the extended exp2 table, p.v as an IEEE float32 `tl.dot` (exact: every partial
  sum is an integer below 2^24), then the attention-output requantisation;
- `frequencies_kernel`: logits -> integer frequencies (each >= 1, summing to 2^16).
Embedding lookups, memory pooling and residual adds are integer torch ops on the same device.

The decoder keeps every position's keys and values (a GPU has the memory), so one attention
kernel serves both passes. On a CPU the kernels run under TRITON_INTERPRET=1, which is how the
tests compare them bit for bit with the PyTorch engine.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from tzip.engine.constants import EXP_BITS, FREQ_BITS, MASKED, NORM_RECIP_BITS, NORM_SCALE, PROB_BITS, RES_LIMIT, U_MAX
from tzip.engine.features import feature_indices, phase_indices
from tzip.engine.reference import Decoder, DecoderHints, IntModel, Linear, Requant
from tzip.format.layout import Layout

NORM_SHIFT = NORM_RECIP_BITS - int(math.log2(16 * NORM_SCALE))  # as engine.rmsnorm


@triton.jit
def linear_kernel(x_ptr, w_ptr, mult_ptr, shift_ptr, out_ptr, M, N, K, lo, hi,
                  sxm, swk, swn, som, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.zeros((BM, BN), dtype=tl.int32)
    for k0 in range(0, K, BK):
        rk = k0 + tl.arange(0, BK)
        x = tl.load(x_ptr + rm[:, None] * sxm + rk[None, :], mask=(rm[:, None] < M) & (rk[None, :] < K), other=0)
        w = tl.load(w_ptr + rk[:, None] * swk + rn[None, :] * swn, mask=(rk[:, None] < K) & (rn[None, :] < N),
                    other=0)
        acc += tl.dot(x, w, out_dtype=tl.int32)
    mult = tl.load(mult_ptr + rn, mask=rn < N, other=0)
    shift = tl.load(shift_ptr + rn, mask=rn < N, other=1)
    y = (acc * mult[None, :] + (1 << (shift[None, :] - 1))) >> shift[None, :]
    y = tl.minimum(tl.maximum(y, lo), hi)
    tl.store(out_ptr + rm[:, None] * som + rn[None, :], y, mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def rmsnorm_kernel(h_ptr, out_ptr, D, BD: tl.constexpr, SHIFT: tl.constexpr):
    row = tl.program_id(0)
    rd = tl.arange(0, BD)
    h = tl.load(h_ptr + row * D + rd, mask=rd < D, other=0).to(tl.float64)
    ms = tl.floor(tl.sum(h * h, axis=0) * 256.0 / D)
    r = tl.maximum(tl.floor(tl.sqrt(ms)), 1.0)  # float64 sqrt and division are IEEE (sqrt.rn/div.rn.f64)
    inv = tl.floor((tl.floor(r * 0.5) + 4294967296.0) / r)  # 2^NORM_RECIP_BITS
    x = tl.floor((h * inv + (2.0 ** (SHIFT - 1))) * (2.0 ** -SHIFT))
    x = tl.minimum(tl.maximum(x, -127.0), 127.0)
    tl.store(out_ptr + row * D + rd, x.to(tl.int8), mask=rd < D)


@triton.jit
def attention_kernel(q_ptr, k_ptr, v_ptr, km_ptr, vm_ptr, out_ptr, exp_ptr, slope_ptr,
                     t0, n_q, n_slots, score_mult, score_shift, out_mult, out_shift,
                     sqb, sqt, skb, skt, smb, sms, sob, sot,
                     H: tl.constexpr, G: tl.constexpr, HD: tl.constexpr, W: tl.constexpr, C: tl.constexpr,
                     M: tl.constexpr, USE_MEMORY: tl.constexpr, BQ: tl.constexpr, BW: tl.constexpr,
                     BM: tl.constexpr, U_MAX: tl.constexpr, MASKED: tl.constexpr, PROB_BITS: tl.constexpr):
    """One program: segment b, query head h, queries t0 + qb*BQ .. +BQ (those below t0 + n_q)."""
    b = tl.program_id(0)
    h = tl.program_id(1)
    kv = h // G
    iq = tl.program_id(2) * BQ + tl.arange(0, BQ)
    t = t0 + iq
    q_ok = iq < n_q
    rd = tl.arange(0, HD)
    q = tl.load(q_ptr + b * sqb + iq[:, None] * sqt + h * HD + rd[None, :], mask=q_ok[:, None], other=0)
    slope = tl.load(slope_ptr + h)
    first = t0 + tl.program_id(2) * BQ - W + 1  # window keys of the block: positions first ..
    p = first + tl.arange(0, BW)
    p_ok = (p >= 0) & (p < t0 + n_q)
    kw = tl.load(k_ptr + b * skb + p[:, None] * skt + kv * HD + rd[None, :], mask=p_ok[:, None], other=0)
    dist = t[:, None] - p[None, :]
    vis = (dist >= 0) & (dist < W) & p_ok[None, :] & q_ok[:, None]
    s = tl.dot(q, tl.trans(kw), out_dtype=tl.int32)
    z = (s * score_mult + (1 << (score_shift - 1))) >> score_shift
    zw = tl.where(vis, z - slope * dist, MASKED)
    zmax = tl.max(zw, axis=1)
    if USE_MEMORY:
        start = t - W + 1
        hi = tl.where(start >= 0, start // C, 0)  # start >= 0 there, so // is floor division
        lo = tl.maximum(hi - M, 0)
        hi0 = tl.where(first >= 0, first // C, 0)
        sl = tl.maximum(hi0 - M, 0) + tl.arange(0, BM)
        sl_ok = sl < n_slots
        km = tl.load(km_ptr + b * smb + sl[:, None] * sms + kv * HD + rd[None, :], mask=sl_ok[:, None], other=0)
        dist_m = t[:, None] - (sl[None, :] * C + C // 2)
        vis_m = (sl[None, :] >= lo[:, None]) & (sl[None, :] < hi[:, None]) & sl_ok[None, :] & q_ok[:, None]
        sm = tl.dot(q, tl.trans(km), out_dtype=tl.int32)
        zm = (sm * score_mult + (1 << (score_shift - 1))) >> score_shift
        zm = tl.where(vis_m, zm - slope * dist_m, MASKED)
        zmax = tl.maximum(zmax, tl.max(zm, axis=1))
    ew = tl.load(exp_ptr + tl.minimum(zmax[:, None] - zw, U_MAX))
    total = tl.sum(ew, axis=1)
    if USE_MEMORY:
        em = tl.load(exp_ptr + tl.minimum(zmax[:, None] - zm, U_MAX))
        total += tl.sum(em, axis=1)
    inv = (1 << (2 * PROB_BITS)) // tl.maximum(total, 1)  # positive operands: // is floor division
    vw = tl.load(v_ptr + b * skb + p[:, None] * skt + kv * HD + rd[None, :], mask=p_ok[:, None], other=0)
    pw = ((ew * inv[:, None]) >> PROB_BITS).to(tl.float32)
    o = tl.dot(pw, vw.to(tl.float32), input_precision="ieee")
    if USE_MEMORY:
        vm = tl.load(vm_ptr + b * smb + sl[:, None] * sms + kv * HD + rd[None, :], mask=sl_ok[:, None], other=0)
        pm = ((em * inv[:, None]) >> PROB_BITS).to(tl.float32)
        o += tl.dot(pm, vm.to(tl.float32), input_precision="ieee")
    y = (o.to(tl.int32) * out_mult + (1 << (out_shift - 1))) >> out_shift
    y = tl.minimum(tl.maximum(y, -127), 127)
    tl.store(out_ptr + b * sob + iq[:, None] * sot + h * HD + rd[None, :], y.to(tl.int8), mask=q_ok[:, None])


@triton.jit
def frequencies_kernel(z_ptr, out_ptr, exp_ptr, U_MAX: tl.constexpr, EXP_BITS: tl.constexpr,
                       FREQ_BITS: tl.constexpr):
    row = tl.program_id(0)
    r = tl.arange(0, 256)
    z = tl.load(z_ptr + row * 256 + r)
    top = tl.argmax(z, axis=0, tie_break_left=True)
    e = tl.load(exp_ptr + tl.minimum(tl.max(z, axis=0) - z, U_MAX))
    spread = (1 << FREQ_BITS) - 256
    inv = (spread << EXP_BITS) // tl.sum(e, axis=0)
    freq = ((e * inv) >> EXP_BITS) + 1
    deficit = (1 << FREQ_BITS) - tl.sum(freq, axis=0)
    tl.store(out_ptr + row * 256 + r, tl.where(r == top, freq + deficit, freq))


def _p2(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


class TritonModel(IntModel):
    """An IntModel whose passes run the Triton kernels on `device` (CUDA, or CPU when interpreted)."""

    def __init__(self, mf, device: str | torch.device = "cuda"):
        super().__init__(mf)
        self.device = torch.device(device)
        dev = self.device
        for lin in [self.head, *self.kv] + [x for L in self.layers for x in (L.qkv, L.proj, L.up, L.down)]:
            lin.weight = lin.weight.to(dev)
            lin.requant = Requant(lin.requant.mult.to(dev), lin.requant.shift.to(dev))
        self.features, self.phase = self.features.to(dev), self.phase.to(dev)
        if self.hint_tables is not None:
            self.hint_tables = self.hint_tables.to(dev)
        self.exp_full = self.exp_full.to(dev)
        self.slopes = self.layers[0].alibi.to(dev)

    def decoder(self, layouts: list[Layout], max_len: int) -> TritonDecoder:
        return TritonDecoder(self, layouts, max_len)

    # -- kernel wrappers ---------------------------------------------------------------------
    def linear(self, lin: Linear, x: torch.Tensor, lo: int = -(2**31), hi: int = 2**31 - 1) -> torch.Tensor:
        w, rq = lin.weight, lin.requant
        flat = x.reshape(-1, x.shape[-1]).contiguous()
        m, k = flat.shape
        n = w.shape[1]
        out = torch.empty(m, n, dtype=torch.int32, device=self.device)
        if m:
            grid = (triton.cdiv(m, 16), triton.cdiv(n, 64))
            linear_kernel[grid](flat, w, rq.mult.expand(n).contiguous(), rq.shift.expand(n).contiguous(), out,
                                m, n, k, lo, hi, flat.stride(0), w.stride(0), w.stride(1), out.stride(0),
                                BM=16, BN=64, BK=32)
        return out.view(*x.shape[:-1], n)

    def norm(self, h: torch.Tensor) -> torch.Tensor:
        flat = h.reshape(-1, h.shape[-1]).contiguous()
        out = torch.empty(flat.shape, dtype=torch.int8, device=self.device)
        if flat.shape[0]:
            rmsnorm_kernel[(flat.shape[0],)](flat, out, flat.shape[1], BD=triton.next_power_of_2(flat.shape[1]),
                                             SHIFT=NORM_SHIFT)
        return out.view(h.shape)

    def attend(self, i: int, q, k, v, km, vm, t0: int, n_q: int, n_slots: int) -> torch.Tensor:
        """q [B, n_q, d] int8; k, v [B, T, kv_dim]; km, vm [B, S, kv_dim] -> int8 [B, n_q, d]."""
        cfg, layer = self.cfg, self.layers[i]
        b, d = q.shape[0], cfg.d_model
        bq = 16
        out = torch.empty(b, n_q, d, dtype=torch.int8, device=self.device)
        n_mem = cfg.mem_slots + bq // cfg.block + 2
        grid = (b, cfg.n_heads, triton.cdiv(n_q, bq))
        attention_kernel[grid](
            q, k, v, km, vm, out, self.exp_full, self.slopes, t0, n_q, n_slots,
            int(layer.score.mult[0]), int(layer.score.shift[0]), int(layer.attn_out.mult[0]),
            int(layer.attn_out.shift[0]), q.stride(0), q.stride(1), k.stride(0), k.stride(1), km.stride(0),
            km.stride(1), out.stride(0), out.stride(1),
            H=cfg.n_heads, G=cfg.n_heads // cfg.n_kv_heads, HD=d // cfg.n_heads, W=cfg.window, C=cfg.block,
            M=cfg.mem_slots, USE_MEMORY=cfg.use_memory, BQ=bq, BW=_p2(bq + cfg.window - 1), BM=_p2(n_mem),
            U_MAX=U_MAX, MASKED=MASKED, PROB_BITS=PROB_BITS)
        return out

    def freqs(self, h: torch.Tensor) -> torch.Tensor:
        z = self.linear(self.head, self.norm(h))
        flat = z.reshape(-1, 256).contiguous()
        out = torch.empty_like(flat)
        if flat.shape[0]:
            frequencies_kernel[(flat.shape[0],)](flat, out, self.exp_full, U_MAX=U_MAX, EXP_BITS=EXP_BITS,
                                                 FREQ_BITS=FREQ_BITS)
        return out.view(z.shape)

    def block(self, i: int, h, q, k, v, km, vm, t0: int, n_slots: int) -> torch.Tensor:
        """Attention output projection and MLP for positions t0.. (h [B, n, d] int32, updated)."""
        layer = self.layers[i]
        o = self.attend(i, q, k, v, km, vm, t0, q.shape[1], n_slots)
        h = (h + self.linear(layer.proj, o)).clamp_(-RES_LIMIT, RES_LIMIT)
        a = self.linear(layer.up, self.norm(h), 0, 127).to(torch.int8)
        return (h + self.linear(layer.down, a)).clamp_(-RES_LIMIT, RES_LIMIT)

    def memory(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Memory slot keys/values [B, S, 2*kv_dim] int8 from the layer input x [B, T, d] int8."""
        c, b, t = self.cfg.block, x.shape[0], x.shape[1]
        n = t // c if self.cfg.use_memory else 0
        sums = x[:, : n * c].reshape(b, n, c, x.shape[-1]).sum(2, dtype=torch.int32)
        return self.linear(self.kv[i], self.pool(sums), -127, 127).to(torch.int8)

    # -- compress -------------------------------------------------------------------------------
    def parallel(self, data: torch.Tensor, layouts: list[Layout], chunk: int = 0,
                 hints: torch.Tensor | None = None) -> torch.Tensor:
        """data [B, T] uint8 -> frequencies [B, T, 256] int32, as IntModel.parallel."""
        cfg = self.cfg
        d, kvd = cfg.d_model, cfg.kv_dim
        t_len = data.shape[1]
        feats = torch.stack([feature_indices(data[i].cpu(), lay) for i, lay in enumerate(layouts)]).to(self.device)
        phase = torch.stack([phase_indices(torch.arange(t_len), lay) for lay in layouts]).to(self.device)
        h = self.embed(feats, phase, self.batch_hints(data, layouts, hints))
        for i, layer in enumerate(self.layers):
            x = self.norm(h)
            qkv = self.linear(layer.qkv, x, -127, 127).to(torch.int8)
            q, k, v = qkv[..., :d], qkv[..., d : d + kvd], qkv[..., d + kvd :]
            mem = self.memory(i, x)
            h = self.block(i, h, q, k, v, mem[..., :kvd], mem[..., kvd:], 0, mem.shape[1])
        return self.freqs(h)


class TritonDecoder:
    """Incremental pass on the Triton kernels; same interface and frequencies as reference.Decoder."""

    features = Decoder.features  # the same feature bytes and phase for position t

    def __init__(self, model: TritonModel, layouts: list[Layout], max_len: int):
        cfg, dev = model.cfg, model.device
        self.m, self.cfg, self.t, self.b = model, cfg, 0, len(layouts)
        n = max_len + 1
        self.history = torch.zeros(self.b, n, dtype=torch.long, device=dev)
        self.offsets = torch.tensor([lay.offsets for lay in layouts], dtype=torch.long, device=dev)
        self.modality = torch.tensor([lay.modality for lay in layouts], dtype=torch.long, device=dev)
        self.period = torch.tensor([lay.period for lay in layouts], dtype=torch.long, device=dev)
        self.use = self.offsets > 0
        zeros = lambda *s: torch.zeros(*s, dtype=torch.int8, device=dev)  # noqa: E731
        self.k = [zeros(self.b, n, cfg.kv_dim) for _ in model.layers]
        self.v = [zeros(self.b, n, cfg.kv_dim) for _ in model.layers]
        slots = n // cfg.block + 1
        self.km = [zeros(self.b, slots, cfg.kv_dim) for _ in model.layers]
        self.vm = [zeros(self.b, slots, cfg.kv_dim) for _ in model.layers]
        self.block_sum = [torch.zeros(self.b, 1, cfg.d_model, dtype=torch.int32, device=dev) for _ in model.layers]
        self.hints = DecoderHints(layouts, max_len, dev) if cfg.hint_slots else None

    def step(self) -> torch.Tensor:
        m, cfg, t = self.m, self.cfg, self.t
        d, kvd, c = cfg.d_model, cfg.kv_dim, cfg.block
        h = m.embed(*self.features(), self.hints.at(t) if self.hints else None)[:, None]  # [B, 1, d]
        n_slots = (t - cfg.window + 1) // c if t - cfg.window + 1 >= 0 and cfg.use_memory else 0
        for i, layer in enumerate(m.layers):
            x = m.norm(h)
            qkv = m.linear(layer.qkv, x, -127, 127).to(torch.int8)
            self.k[i][:, t] = qkv[:, 0, d : d + kvd]
            self.v[i][:, t] = qkv[:, 0, d + kvd :]
            if cfg.use_memory:
                self.block_sum[i] += x
                if (t + 1) % c == 0:
                    kv = m.linear(m.kv[i], m.pool(self.block_sum[i]), -127, 127).to(torch.int8)
                    slot = (t + 1) // c - 1
                    self.km[i][:, slot] = kv[:, 0, :kvd]
                    self.vm[i][:, slot] = kv[:, 0, kvd:]
                    self.block_sum[i].zero_()
            h = m.block(i, h, qkv[..., :d], self.k[i], self.v[i], self.km[i], self.vm[i], t, n_slots)
        return m.freqs(h)[:, 0]

    def push(self, symbols) -> None:
        self.history[:, self.t] = torch.as_tensor(symbols).long().to(self.history.device)
        if self.hints is not None:
            self.hints.push(self.t, symbols)
        self.t += 1
