"""The integer-only inference engine (PyTorch reference backend).

Every value is an integer. Linear layers are int8 x int8 -> int32 products (`torch._int_mm`);
attention products run as float32 batched GEMMs on integer-valued tensors, exact in any order
because `base.check_bounds` proves every partial sum stays below 2^24 (docs/DESIGN.md §2).
Requantisation is int32 (per-channel multiplier and rounding shift, sized at export so the product
cannot overflow); RMSNorm is computed in float64 on integers, exact by IEEE rounding (see
`rmsnorm`); softmax uses an exp2 table and a per-row reciprocal. The output is, per
position, integer frequencies for the 256 byte values, each >= 1, summing to exactly 2^FREQ_BITS.

Two modes give identical frequencies: `parallel` (teacher-forced over whole segments, used to
compress) and `Decoder.step` (one byte per step over a batch of segments, used to decompress).
This module is the reference and the fallback; where the C library is built the CPU runs the same
integers from tzip/native/engine.c (`IntModel.decoder` and `IntModel.segment_frequencies` choose
it). The two PyTorch modes are organised for speed on a CPU too: the parallel pass walks the sequence in row blocks so
temporaries stay in cache, and attends in chunks of QUERY_CHUNK queries to a band of keys; the
decoder keeps ring buffers (keys in ring order; the bias says which are visible) so a step
gathers nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tzip.engine.base import QUERY_CHUNK, Model
from tzip.engine.config import exp_full
from tzip.engine.constants import (
    EXP_BITS,
    FREQ_BITS,
    MASKED,
    NORM_RECIP_BITS,
    NORM_SCALE,
    PROB_BITS,
    RES_LIMIT,
    U_MAX,
)
from tzip.engine.features import feature_indices, phase_indices, visible_slots
from tzip.engine.modelfile import IntModelFile
from tzip.format.layout import ABSENT, N_FEATURES, PHASES, Layout

ROW_BLOCK = 256  # positions per block of the parallel pass (keeps temporaries in cache)
HEAD_ROWS = ROW_BLOCK  # kept as a name for tests that slice the head


@dataclass
class Requant:
    """y = (acc * mult + 2^(shift-1)) >> shift per channel, in int32 (export proves no overflow)."""

    mult: torch.Tensor  # int32 [channels] or [1]
    shift: torch.Tensor  # int32 [channels] or [1]

    def __post_init__(self):
        self.round = (1 << (self.shift - 1)).to(torch.int32)

    def __call__(self, acc: torch.Tensor) -> torch.Tensor:
        """Requantise an int32 accumulator (in place where it can; returns the result)."""
        return torch.addcmul(self.round, acc, self.mult).bitwise_right_shift_(self.shift)

    def part(self, lo: int, hi: int) -> Requant:
        return Requant(self.mult[lo:hi], self.shift[lo:hi])


@dataclass
class Linear:
    weight: torch.Tensor  # int8 [in, out], column-major (the fast layout for _int_mm)
    requant: Requant

    def acc(self, x: torch.Tensor) -> torch.Tensor:
        """int8 [..., in] -> int32 accumulator [..., out]."""
        flat = x.reshape(-1, x.shape[-1])
        if flat.shape[0] == 0:
            return torch.zeros(*x.shape[:-1], self.weight.shape[1], dtype=torch.int32)
        return torch._int_mm(flat, self.weight).view(*x.shape[:-1], self.weight.shape[1])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.requant(self.acc(x))


@dataclass
class Layer:
    qkv: Linear
    proj: Linear
    up: Linear
    down: Linear
    score: Requant
    attn_out: Requant
    alibi: torch.Tensor  # int32 [H]


def rmsnorm(h: torch.Tensor) -> torch.Tensor:
    """Integer RMSNorm of int32 h [..., d] -> int8 round(h * NORM_SCALE / rms(h)). Gain is in the weights.

    Computed in float64 on integers, where every step is exact by IEEE 754 (correctly rounded
    sqrt and division) and the bounds |h| <= 2^20:
      ms    = floor(256 * sum(h^2) / d)          sums of integers below 2^53 are exact
      rms16 = floor(sqrt(ms))                    exact for ms < 2^52 (floor of the rounded root)
      inv   = floor((2^32 + rms16 // 2) / rms16) exact: the numerator is below 2^53
      x     = floor((h * inv + 2^23) / 2^24)     |h * inv| <= 2^52; scaling by 2^-24 is exact
    so the result is the same integer on any IEEE machine, in any summation order.
    """
    d = h.shape[-1]
    hf = h.to(torch.float64)
    ms = hf.square().sum(-1, keepdim=True)
    ms = ms.mul_(256 / d).floor_() if d & (d - 1) == 0 else ms.mul_(256).div_(d).floor_()
    rms16 = ms.sqrt_().floor_().clamp_(min=1)
    inv = torch.floor(rms16 * 0.5).add_(2.0**NORM_RECIP_BITS).div_(rms16).floor_()
    shift = NORM_RECIP_BITS - int(math.log2(16 * NORM_SCALE))
    x = hf.mul_(inv).add_(2.0 ** (shift - 1)).mul_(2.0**-shift).floor_()
    return x.clamp_(-127, 127).to(torch.int8)


class IntModel(Model):
    """An integer model file made ready to run: tensors in the shapes the engine wants."""

    def __init__(self, mf: IntModelFile):
        super().__init__(mf)  # checks the bounds that make every engine exact
        cfg = self.cfg
        t = {k: torch.from_numpy(np.array(v)) for k, v in mf.tensors.items()}

        def requant(name: str) -> Requant:
            return Requant(t[f"{name}.mult"].to(torch.int32), t[f"{name}.shift"].to(torch.int32))

        def linear(name: str) -> Linear:
            w = t[f"{name}.w"]
            if w.dtype != torch.int8:
                raise ValueError("weights must be int8")
            return Linear(w.contiguous().T, requant(name))  # [in, out] with column-major strides

        self.features = t["embed.features"].to(torch.int32)  # [N_FEATURES, 257, d]
        self.phase = t["embed.phase"].to(torch.int32)  # [4*PHASES, d]
        self.hint_tables = t["embed.hints"].to(torch.int32) if cfg.hint_slots else None  # [hint_slots, 257, d]
        self.layers = [
            Layer(
                linear(f"layers.{i}.qkv"), linear(f"layers.{i}.proj"), linear(f"layers.{i}.up"),
                linear(f"layers.{i}.down"), requant(f"layers.{i}.score"),
                requant(f"layers.{i}.attn_out"), t[f"layers.{i}.alibi"].to(torch.int32),
            )
            for i in range(cfg.n_layers)
        ]
        self.head = linear("head")
        self.exp_table = t["exp_table"].to(torch.int32)
        self.exp_full = torch.from_numpy(exp_full(mf.tensors["exp_table"]))  # one lookup over the clamped range
        d = cfg.d_model
        # memory slots get keys and values from the same projection as window positions
        self.kv = [Linear(L.qkv.weight[:, d:], L.qkv.requant.part(d, d + 2 * cfg.kv_dim)) for L in self.layers]
        self._chunk_bias: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.device = torch.device("cpu")

    @property
    def on_cpu(self) -> bool:
        return self.device.type == "cpu"

    def decoder(self, layouts: list[Layout], max_len: int):
        """The incremental pass of this backend: the C step where it builds, else the PyTorch one."""
        from tzip.engine import native

        if native.usable(self):
            return native.NativeDecoder(self, layouts, max_len)
        return Decoder(self, layouts, max_len)

    def segment_frequencies(self, symbols: np.ndarray, layout: Layout,
                            rows: tuple[int, int] | None = None, hints: np.ndarray | None = None) -> np.ndarray:
        """Teacher-forced frequencies [T, 256] of one segment (or rows = (row0, n) of it): the C pass
        where it builds, else `parallel` over the segment up to the rows' end."""
        from tzip.engine import native

        if native.usable(self):
            return native.parallel(self, symbols, layout, rows=rows, hints=hints)
        row0, n = rows if rows is not None else (0, len(symbols))
        data = np.array(symbols, dtype=np.uint8)
        if self.hint_tables is not None and hints is None:
            hints = model_hints(self, data, layout)
        x = torch.from_numpy(data[: row0 + n])[None]
        part = None if hints is None else torch.as_tensor(np.asarray(hints)[: row0 + n].astype(np.int64))[None]
        return np.ascontiguousarray(self.parallel(x, [layout], hints=part)[0, row0:].cpu().numpy())

    # -- shared pieces ---------------------------------------------------------------------
    def embed(self, feats: torch.Tensor, phase: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """int32 residual stream [..., d] from feature bytes, phase indices and, for a model with
        hint slots, the hints [..., hint_slots] (ABSENT for none)."""
        h = self.phase[phase]
        for slot in range(N_FEATURES):
            h += self.features[slot][feats[..., slot]]
        if self.hint_tables is not None:
            if hints is None:
                raise ValueError("this model embeds hints: pass them")
            hints = torch.where((hints >= 0) & (hints < ABSENT), hints, ABSENT)
            for slot in range(self.cfg.hint_slots):
                h += self.hint_tables[slot][hints[..., slot]]
        return h.clamp_(-RES_LIMIT, RES_LIMIT)

    def batch_hints(self, data: torch.Tensor, layouts: list[Layout], hints: torch.Tensor | None) -> torch.Tensor | None:
        """The hints [B, T, N_HINTS] long a pass over `data` [B, T] embeds: None for a model
        without hint slots, else `hints` or each row's own (stages.hints.hints_for)."""
        if self.hint_tables is None:
            return None
        if hints is None:
            rows = [model_hints(self, data[i].cpu().numpy(), lay) for i, lay in enumerate(layouts)]
            hints = torch.from_numpy(np.stack(rows).astype(np.int64))
        return torch.as_tensor(hints).long().to(self.device)

    def exp2(self, u: torch.Tensor) -> torch.Tensor:
        """table[u & 255] >> (u >> SCORE_FRAC) = 2^(-u / 2^SCORE_FRAC) * 2^EXP_BITS, for 0 <= u <= U_MAX."""
        return self.exp_full.index_select(0, u.view(-1)).view(u.shape)

    def row_sum(self, e: torch.Tensor) -> torch.Tensor:
        """Sum over the last axis of int32 values < 2^15 (float32 is exact below 2^24, and fast)."""
        return e.to(torch.float32).sum(-1, keepdim=True).to(torch.int32)

    def softmax_weights(self, z: torch.Tensor) -> torch.Tensor:
        """int32 scores [..., K] -> float32 integer weights summing to at most 2^PROB_BITS (consumes z)."""
        u = torch.sub(z.amax(-1, keepdim=True), z, out=z).clamp_(max=U_MAX)
        e = self.exp2(u)
        inv = (1 << (2 * PROB_BITS)) // self.row_sum(e)  # total >= 2^15: the max has weight 2^15
        return e.mul_(inv).bitwise_right_shift_(PROB_BITS).to(torch.float32)

    def frequencies(self, h: torch.Tensor) -> torch.Tensor:
        """Final norm + head -> int32 frequencies [..., 256], each >= 1, summing to 2^FREQ_BITS."""
        z = self.head(rmsnorm(h))
        top = z.argmax(-1, keepdim=True)
        u = torch.sub(z.amax(-1, keepdim=True), z, out=z).clamp_(max=U_MAX)
        e = self.exp2(u)
        spread = (1 << FREQ_BITS) - 256
        inv = (spread << EXP_BITS) // self.row_sum(e)  # <= spread: the top has weight 2^15
        freq = e.mul_(inv).bitwise_right_shift_(EXP_BITS).add_(1)
        deficit = (1 << FREQ_BITS) - freq.sum(-1, keepdim=True, dtype=torch.int32)
        return freq.scatter_add_(-1, top, deficit)

    def mlp(self, layer: Layer, h: torch.Tensor) -> torch.Tensor:
        """h += down(relu(up(norm(h)))), in place."""
        a = layer.up(rmsnorm(h)).clamp_(0, 127).to(torch.int8)
        return h.add_(layer.down(a)).clamp_(-RES_LIMIT, RES_LIMIT)

    def project(self, layer: Layer, o: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """o: float32 attention accumulators [..., d]; h += proj(requant(o)), in place."""
        o = layer.attn_out(o.to(torch.int32)).clamp_(-127, 127).to(torch.int8)
        return h.add_(layer.proj(o)).clamp_(-RES_LIMIT, RES_LIMIT)

    def memory_kv(self, i: int, pooled: torch.Tensor) -> torch.Tensor:
        """Keys and values of memory slots (pooled int8 [..., d]) -> float32 [..., 2 * kv_dim]."""
        return self.kv[i](pooled).clamp_(-127, 127).to(torch.float32)

    def pool(self, block_sum: torch.Tensor) -> torch.Tensor:
        c = self.cfg.block
        return torch.div(block_sum + c // 2, c, rounding_mode="floor").to(torch.int8)

    def alibi_bias(self, dist: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """int32 [H, *dist.shape]: -slope * distance where visible, MASKED elsewhere."""
        slopes = self.layers[0].alibi.view(-1, *([1] * dist.dim()))
        return torch.where(visible, -slopes * dist.to(torch.int32), torch.tensor(MASKED, dtype=torch.int32))

    # -- compress: teacher-forced pass over whole segments ------------------------------------
    def band_bias(self, q: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention bias of the parallel pass: (first chunks [n0, H, q, K], steady state [H, q, K]).

        Chunk j holds queries jq..jq+q-1 and sees window keys jq-W+1..jq+q-1 and memory slots
        jq/c + floor((1-W)/c) - M + 0..M+q/c-1. After the first n0 chunks the pattern repeats.
        """
        cfg = self.cfg
        w, c, m = cfg.window, cfg.block, cfg.mem_slots
        key = (q,)
        if key not in self._chunk_bias:
            first = -(-(w - 1 + c * (m + 1)) // q) + 1
            j = torch.arange(first + 1)[:, None, None]
            a = torch.arange(q)[None, :, None]
            t = j * q + a
            b = torch.arange(w + q - 1)[None, None, :]
            p = j * q - w + 1 + b
            dist_w, vis_w = t - p, (t - p >= 0) & (t - p < w) & (p >= 0)
            bm = torch.arange(m + q // c)[None, None, :] if cfg.use_memory else torch.zeros(1, 1, 0, dtype=torch.long)
            slot = j * (q // c) + (1 - w) // c - m + bm
            lo, hi = visible_slots(t, w, c, m)
            vis_m = (slot >= lo) & (slot < hi) & (slot >= 0)
            dist_m = t - (slot * c + c // 2)
            dist = torch.cat([dist_w.expand(-1, q, -1), dist_m.expand(-1, q, -1)], -1)
            vis = torch.cat([vis_w.expand(-1, q, -1), vis_m.expand(-1, q, -1)], -1)
            bias = self.alibi_bias(dist, vis)  # [H, first+1, q, K]
            self._chunk_bias[key] = (bias[:, :first].transpose(0, 1).contiguous(), bias[:, first].contiguous())
        return self._chunk_bias[key]

    def parallel(self, data: torch.Tensor, layouts: list[Layout], chunk: int = QUERY_CHUNK,
                 hints: torch.Tensor | None = None) -> torch.Tensor:
        """data [B, T] uint8 (rows padded at the end) -> frequencies [B, T, 256] int32; hints
        [B, T, N_HINTS] for a model with hint slots (each row's own where not given).

        `chunk` (queries per band of keys) is a speed knob only: it must be a multiple of the
        memory block c; any other value is rounded to one. Results never depend on it.
        """
        cfg = self.cfg
        b, t_len = data.shape
        c, w, m, nh, nkv, d = cfg.block, cfg.window, cfg.mem_slots, cfg.n_heads, cfg.n_kv_heads, cfg.d_model
        hd, g = d // nh, nh // nkv  # query head h uses key/value head h // g
        q = max(c, chunk // c * c)
        rows = max(q, ROW_BLOCK // q * q)
        n_chunks = -(-t_len // q)
        tp = n_chunks * q
        feats = torch.stack([feature_indices(data[i], lay) for i, lay in enumerate(layouts)])
        pos = torch.arange(t_len)
        phase = torch.stack([phase_indices(pos, lay) for lay in layouts])
        h = torch.zeros(b, tp, d, dtype=torch.int32)
        h[:, :t_len] = self.embed(feats, phase, self.batch_hints(data, layouts, hints))
        first, steady = self.band_bias(q)  # [n0, H, q, K], [H, q, K]
        first = first.view(-1, nkv, g, q, first.shape[-1]).transpose(0, 1)  # [nkv, n0, g, q, K]
        steady = steady.view(nkv, 1, g, q, -1)
        mem_pad = m - (1 - w) // c  # memory slot s sits at index s + mem_pad
        n_slots = tp // c if cfg.use_memory else 0
        km_len = mem_pad + n_chunks * (q // c) + m + q // c
        k_len = w - 1 + tp
        n_mem = m + q // c if cfg.use_memory else 0
        for i, layer in enumerate(self.layers):
            qs = torch.zeros(b, nkv, n_chunks, g, q, hd)  # queries grouped by the kv head they use
            ks = torch.zeros(b, nkv, k_len, hd)  # position p at index p + w - 1
            vs = torch.zeros(b, nkv, k_len, hd)
            sums = torch.zeros(b, n_slots, d, dtype=torch.int32)
            for r0 in range(0, tp, rows):  # pass 1: queries, keys, values, memory block sums
                r1 = min(r0 + rows, tp)
                x = rmsnorm(h[:, r0:r1])
                out = layer.qkv(x).clamp_(-127, 127).to(torch.float32)
                qs[:, :, r0 // q : r1 // q] = out[..., :d].view(b, -1, q, nkv, g, hd).permute(0, 3, 1, 4, 2, 5)
                kv = out[..., d:].view(b, r1 - r0, 2, nkv, hd)
                ks[:, :, w - 1 + r0 : w - 1 + r1] = kv[:, :, 0].transpose(1, 2)
                vs[:, :, w - 1 + r0 : w - 1 + r1] = kv[:, :, 1].transpose(1, 2)
                if n_slots:
                    sums[:, r0 // c : r1 // c] = x.view(b, -1, c, d).sum(2, dtype=torch.int32)
            kms = torch.zeros(b, nkv, km_len, hd)
            vms = torch.zeros(b, nkv, km_len, hd)
            if n_slots:
                kv = self.memory_kv(i, self.pool(sums)).view(b, n_slots, 2, nkv, hd)
                kms[:, :, mem_pad : mem_pad + n_slots] = kv[:, :, 0].transpose(1, 2)
                vms[:, :, mem_pad : mem_pad + n_slots] = kv[:, :, 1].transpose(1, 2)
            for r0 in range(0, tp, rows):  # pass 2: attention, projection and MLP per row block
                r1 = min(r0 + rows, tp)
                j0, nb = r0 // q, (r1 - r0) // q

                keys = torch.cat([band(ks, j0, nb, q, w + q - 1), band(kms, j0, nb, q // c, n_mem)], 3)
                vals = torch.cat([band(vs, j0, nb, q, w + q - 1), band(vms, j0, nb, q // c, n_mem)], 3)
                s = torch.matmul(qs[:, :, j0 : j0 + nb].view(b, nkv, nb, g * q, hd), keys.transpose(-1, -2))
                z = layer.score(s.to(torch.int32)).view(b, nkv, nb, g, q, -1)
                if j0 >= first.shape[1]:
                    z += steady
                else:
                    n_first = min(nb, first.shape[1] - j0)
                    z[:, :, :n_first] += first[:, j0 : j0 + n_first]
                    z[:, :, n_first:] += steady
                p = self.softmax_weights(z).view(b, nkv, nb, g * q, -1)
                o = torch.matmul(p, vals).view(b, nkv, nb, g, q, hd)  # [b, nkv, nb, g, q, hd]
                o = o.permute(0, 2, 4, 1, 3, 5).reshape(b, r1 - r0, d)
                hb = h[:, r0:r1]
                self.mlp(layer, self.project(layer, o, hb))
        out = torch.empty(b, t_len, 256, dtype=torch.int32)
        for r0 in range(0, t_len, HEAD_ROWS):
            out[:, r0 : r0 + HEAD_ROWS] = self.frequencies(h[:, r0 : min(r0 + HEAD_ROWS, t_len)])
        return out


def band(buf: torch.Tensor, j0: int, n: int, step: int, count: int) -> torch.Tensor:
    """Overlapping windows of buf [b, heads, L, hd]: window j covers rows (j0+j)*step .. +count (a view)."""
    b, nh, length, hd = buf.shape
    return buf.as_strided((b, nh, n, count, hd), (nh * length * hd, length * hd, step * hd, hd, 1),
                          buf.storage_offset() + j0 * step * hd)


def model_hints(model: IntModel, data: np.ndarray, layout: Layout) -> np.ndarray | None:
    """stages.hints.model_hints, imported when a model with hint slots first needs it."""
    from tzip.stages.hints import model_hints as hints_of

    return hints_of(model, data, layout)


class DecoderHints:
    """The hints of a decode batch for the PyTorch and Triton decoders: the bytes decoded so far
    in numpy, where the hint states (stages.hints.HintsBatch) read them."""

    def __init__(self, layouts: list[Layout], max_len: int, device: torch.device):
        from tzip.stages.hints import HintsBatch

        if any(lay != layouts[0] for lay in layouts):
            raise ValueError("a decode batch of a model with hints has one layout")
        self.history = np.zeros((len(layouts), max_len + 1), dtype=np.uint8)
        self.batch, self.device = HintsBatch(self.history, layouts[0]), device

    def at(self, t: int) -> torch.Tensor:
        """[B, N_HINTS] long: position t's hints."""
        return torch.from_numpy(self.batch.predict(t).astype(np.int64)).to(self.device)

    def push(self, t: int, symbols) -> None:
        self.history[:, t] = torch.as_tensor(symbols).cpu().numpy()
        self.batch.update(t)


class Decoder:
    """Incremental pass: one byte per step for a batch of segments, with window and memory rings.

    All segments advance together (position t is the same for every row), so each step is a
    real matrix product over the batch; rows past their segment's end just carry on unused.
    Keys and values live in ring order: index t % W for the window, W + slot % R for memory;
    the step's bias (which depends on t alone, periodically after warm-up) masks the rest.
    """

    def __init__(self, model: IntModel, layouts: list[Layout], max_len: int):
        cfg = model.cfg
        self.m, self.cfg, self.t = model, cfg, 0
        b, nkv, hd = len(layouts), cfg.n_kv_heads, cfg.d_model // cfg.n_heads
        self.b = b
        self.history = torch.zeros(b, max_len + 1, dtype=torch.long)
        self.offsets = torch.tensor([lay.offsets for lay in layouts], dtype=torch.long)
        self.modality = torch.tensor([lay.modality for lay in layouts], dtype=torch.long)
        self.period = torch.tensor([lay.period for lay in layouts], dtype=torch.long)
        self.use = self.offsets > 0
        self.ring = model.ring
        keys = cfg.window + (self.ring if cfg.use_memory else 0)
        self.keys = [torch.zeros(b, nkv, hd, keys) for _ in model.layers]  # transposed: q @ keys is a plain GEMM
        self.vals = [torch.zeros(b, nkv, keys, hd) for _ in model.layers]
        self.block_sum = [torch.zeros(b, cfg.d_model, dtype=torch.int32) for _ in model.layers]
        c = cfg.block
        self.warm = cfg.window + c * (self.ring + 1)
        self.bias_period = math.lcm(cfg.window, self.ring * c) if cfg.use_memory else cfg.window
        self._bias: dict[int, torch.Tensor] = {}
        self.hints = DecoderHints(layouts, max_len, model.device) if cfg.hint_slots else None

    def features(self) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.t
        src = t - self.offsets  # [B, N_FEATURES]
        ok = self.use & (src >= 0)
        feats = torch.where(ok, self.history.gather(1, src.clamp(min=0)), ABSENT)
        phase = self.modality * PHASES + t % self.period
        return feats, phase

    def bias(self, t: int) -> torch.Tensor:
        """[nkv, g, keys] int32 for position t (memoised; periodic in t after warm-up)."""
        key = t if t < self.warm else self.warm + (t - self.warm) % self.bias_period
        got = self._bias.get(key)
        if got is None:
            cfg, w, c = self.cfg, self.cfg.window, self.cfg.block
            j = torch.arange(w)
            dist_w = (t - j) % w
            vis_w = t - dist_w >= 0
            parts_d, parts_v = [dist_w], [vis_w]
            if cfg.use_memory:
                lo, hi = visible_slots(t, w, c, cfg.mem_slots)
                r = torch.arange(self.ring)
                slot = hi - 1 - ((hi - 1 - r) % self.ring)
                parts_d.append(t - (slot * c + c // 2))
                parts_v.append((slot >= lo) & (slot < hi))
            dist, vis = torch.cat(parts_d), torch.cat(parts_v)
            got = self.m.alibi_bias(dist, vis).view(cfg.n_kv_heads, -1, dist.shape[0])  # [nkv, g, keys]
            self._bias[key] = got
        return got

    def step(self) -> torch.Tensor:
        """Frequencies [B, 256] for position t, given bytes 0..t-1 pushed with `push`."""
        m, cfg, t, b = self.m, self.cfg, self.t, self.b
        c, w, nkv, d = cfg.block, cfg.window, cfg.n_kv_heads, cfg.d_model
        g = cfg.n_heads // nkv
        feats, phase = self.features()
        h = m.embed(feats, phase, self.hints.at(t) if self.hints else None)  # [B, d]
        bias = self.bias(t)
        block_done = cfg.use_memory and (t + 1) % c == 0
        for i, layer in enumerate(m.layers):
            x = rmsnorm(h)
            out = layer.qkv(x).clamp_(-127, 127).to(torch.float32)
            kv = out[:, d:].view(b, 2, nkv, -1)
            keys, vals = self.keys[i], self.vals[i]
            keys[:, :, :, t % w] = kv[:, 0]
            vals[:, :, t % w] = kv[:, 1]
            if cfg.use_memory:
                self.block_sum[i] += x
                if block_done:
                    kv = m.memory_kv(i, m.pool(self.block_sum[i])).view(b, 2, nkv, -1)
                    slot = w + ((t + 1) // c - 1) % self.ring
                    keys[:, :, :, slot] = kv[:, 0]
                    vals[:, :, slot] = kv[:, 1]
                    self.block_sum[i].zero_()
            s = torch.matmul(out[:, :d].view(b, nkv, g, -1), keys)  # [B, nkv, g, keys]
            z = layer.score(s.to(torch.int32)).add_(bias)
            o = torch.matmul(m.softmax_weights(z), vals).view(b, d)
            m.mlp(layer, m.project(layer, o, h))
        return m.frequencies(h)

    def push(self, symbols) -> None:
        """Record the bytes decoded at position t and advance to t + 1."""
        self.history[:, self.t] = torch.as_tensor(symbols).long()
        if self.hints is not None:
            self.hints.push(self.t, symbols)
        self.t += 1
