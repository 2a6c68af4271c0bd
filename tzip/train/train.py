"""Train a tzip model on a shard; resumable, CPU or CUDA; ends by exporting the integer model.

    python -m tzip.train --shard data.shard --out runs/small [--steps N] [--device cuda] ...

Every option is a field of TrainConfig (plus ModelConfig's fields). The run directory keeps
ckpt.pt (model, optimiser, step, RNG) so a later run — on another machine — resumes it, and
log.jsonl (loss in bits/byte, tokens seen, throughput, wall time).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tzip.engine.config import ModelConfig
from tzip.engine.features import feature_indices, phase_indices
from tzip.engine.modelfile import MAGIC as MODEL_MAGIC
from tzip.engine.modelfile import load
from tzip.format.detect import pcm16_channels, predict_residual
from tzip.format.layout import ABSENT, AUDIO, BINARY, IMAGE, TEXT
from tzip.train.export import export, import_model
from tzip.train.model import TzipModel
from tzip.train.shard import Shard


@dataclass
class TrainConfig:
    shard: str = ""
    out: str = "runs/default"
    steps: int = 20000
    batch: int = 16
    seq: int = 1024
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup: int = 200
    weight_decay: float = 0.05
    mixture: dict = field(default_factory=lambda: {TEXT: 0.5, IMAGE: 0.25, AUDIO: 0.25})
    eval_every: int = 250
    save_every: int = 250
    device: str = "auto"
    threads: int = 0
    seed: int = 1234
    export_to: str = ""  # integer model file written at the end (default OUT/model.tzm)
    max_minutes: float = 0  # stop (and save) after this much wall time; 0 = no limit
    init_from: str = ""  # start a new run from a ckpt.pt or a model file (.tzm), adapting its weights to this config
    crlf: float = 0.0  # share of training text crops given CRLF line ends: the corpora's text is LF-only, text
    # written on Windows is CRLF, and a model that never saw "\r\n" loses its place at every line end


def with_crlf(text: np.ndarray, length: int) -> np.ndarray:
    """The first `length` bytes of `text` with every line end made CRLF (a CRLF stays one)."""
    raw = text.tobytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return np.frombuffer(raw[:length], dtype=np.uint8).copy()


def model_order(shard: Shard, doc, start: int, end: int, predictor: int) -> np.ndarray:
    """Bytes start..end of a doc as the model sees them: 16-bit audio as the predictor's residual
    (history from the doc itself; zero before its start, as at a segment start when coding)."""
    channels = pcm16_channels(doc.layout) if predictor else 0
    pre = min(start, predictor * 2 * channels)
    raw = np.array(shard.bytes_of(doc, start - pre, end))
    if not channels:
        return raw
    return np.frombuffer(predict_residual(raw.tobytes(), channels, predictor), dtype=np.uint8)[pre:].copy()


class Batches:
    """Random crops of length `seq` from the shard's docs (a share cfg.crlf of training text crops with
    CRLF line ends), with features seen from the full doc and,
    for a model with hint slots, the shard's hints of the same positions."""

    def __init__(self, shard: Shard, cfg: TrainConfig, val: bool, seed: int, predictor: int = 0,
                 hint_slots: int = 0):
        self.shard, self.seq, self.predictor, self.hint_slots = shard, cfg.seq, predictor, hint_slots
        self.crlf = 0.0 if val or hint_slots else cfg.crlf  # hints are the stored bytes'; held-out crops stay as stored
        if hint_slots:
            if shard.hints is None:
                raise ValueError(f"the model has hint slots but {shard.path} has no hints: "
                                 f"python -m corpora.pack --add-hints {shard.path}")
            if shard.hints.shape[1] != hint_slots:
                raise ValueError(f"{shard.path} has {shard.hints.shape[1]} hints per byte, the model {hint_slots}")
            if shard.hint_predictor != predictor and any(pcm16_channels(d.layout) for d in shard.docs):
                raise ValueError(f"{shard.path}'s audio hints are for audio predictor {shard.hint_predictor}, the "
                                 f"model's is {predictor}: python -m corpora.pack --add-hints {shard.path} "
                                 f"--predictor {predictor}")
        self.rng = np.random.default_rng(seed)
        self.by_modality: dict[int, list] = {}
        for doc in shard.docs:
            if doc.val == val and doc.length > cfg.seq:
                self.by_modality.setdefault(doc.layout.modality, []).append(doc)
        if not self.by_modality:
            raise ValueError(f"shard has no {'validation' if val else 'training'} docs longer than {cfg.seq} bytes")
        mods = [m for m in self.by_modality if cfg.mixture.get(m, 0) > 0] or list(self.by_modality)
        w = np.array([cfg.mixture.get(m, 1.0) for m in mods], dtype=np.float64)
        self.modalities, self.mod_p = mods, w / w.sum()
        self.doc_p = {m: np.array([d.length for d in ds], np.float64) / sum(d.length for d in ds)
                      for m, ds in self.by_modality.items()}

    def sample(self):
        m = self.modalities[self.rng.choice(len(self.modalities), p=self.mod_p)]
        doc = self.by_modality[m][self.rng.choice(len(self.by_modality[m]), p=self.doc_p[m])]
        lay = doc.layout
        start = int(self.rng.integers(0, doc.length - self.seq)) // lay.period * lay.period
        back = min(start, max(lay.offsets))
        x = model_order(self.shard, doc, start - back, start + self.seq, self.predictor)
        if m == TEXT and self.crlf and self.rng.random() < self.crlf:
            x = with_crlf(x, back + self.seq)
        x = torch.from_numpy(x)
        feats = feature_indices(x, lay)[back:]
        phase = phase_indices(torch.arange(self.seq), lay)
        hints = None
        if self.hint_slots:  # the hint at t is the stages' prediction of byte t, as the feature rows are
            hints = torch.from_numpy(self.shard.hints_of(doc, start, start + self.seq).astype(np.int64))
        return feats, phase, x[back:].long(), m, hints

    def batch(self, n: int):
        """feats [n, seq, N_FEATURES], phase [n, seq], targets [n, seq], modalities, hints [n, seq,
        hint_slots] (None without hint slots)."""
        items = [self.sample() for _ in range(n)]
        feats, phase, y = (torch.stack([it[i] for it in items]) for i in range(3))
        hints = torch.stack([it[4] for it in items]) if self.hint_slots else None
        return feats, phase, y, [it[3] for it in items], hints


def lr_at(step: int, cfg: TrainConfig, total: int | None = None) -> float:
    """Warmup then cosine to min_lr at `total` steps (cfg.steps, or fewer if time runs short)."""
    total = total or cfg.steps
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = min(1.0, (step - cfg.warmup) / max(1, total - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * frac))


@torch.no_grad()
def evaluate(model: TzipModel, data: Batches, device: str, n: int = 8) -> dict[int, float]:
    """Float cross-entropy in bits/byte per modality, on held-out crops."""
    model.eval()
    sums: dict[int, list[float]] = {}
    for _ in range(n):
        feats, phase, y, mods, hints = data.batch(4)
        logits = model(feats.to(device), phase.to(device), to_device(hints, device)).float()
        ce = F.cross_entropy(logits.transpose(1, 2), y.to(device), reduction="none").mean(1)
        for m, v in zip(mods, ce.tolist()):
            sums.setdefault(m, []).append(v / math.log(2))
    model.train()
    return {m: float(np.mean(v)) for m, v in sums.items()}


def to_device(x: torch.Tensor | None, device: str) -> torch.Tensor | None:
    return None if x is None else x.to(device)


def adapt_weights(src: dict, src_cfg: ModelConfig, cfg: ModelConfig) -> dict:
    """A state dict from a model of src_cfg, made to fit cfg ("uptraining", Ainslie et al. 2023).

    Key/value heads are mean-pooled within each group when cfg has fewer of them; window, block
    and memory sizes change no weights; hint tables are added as zeros, so the model starts out
    computing exactly what src did.
    """
    out = dict(src)
    d, hd = src_cfg.d_model, src_cfg.d_model // src_cfg.n_heads
    if (d, src_cfg.n_heads, src_cfg.n_layers, src_cfg.d_ff) != (cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.d_ff):
        raise ValueError("init_from can change kv heads, window and memory, not the model's width or depth")
    if cfg.hint_slots != src_cfg.hint_slots:
        if src_cfg.hint_slots:
            raise ValueError("init_from can add hint slots to a model without them, not change or remove them")
        for slot in range(cfg.hint_slots):
            out[f"hints.{slot}.weight"] = torch.zeros(ABSENT + 1, d)
    if cfg.n_kv_heads != src_cfg.n_kv_heads:
        group = src_cfg.n_kv_heads // cfg.n_kv_heads
        if group < 1 or src_cfg.n_kv_heads % cfg.n_kv_heads:
            raise ValueError("kv heads can only be pooled into fewer groups")
        for name, w in src.items():
            if name.endswith("qkv.weight"):
                q, k, v = w.split([d, src_cfg.kv_dim, src_cfg.kv_dim])
                pool = lambda z: z.view(cfg.n_kv_heads, group, hd, -1).mean(1).reshape(-1, z.shape[1])  # noqa: E731
                out[name] = torch.cat([q, pool(k), pool(v)])
    return out


def load_init(path: str) -> tuple[dict, ModelConfig, int, float]:
    """A run's starting weights from a ckpt.pt or an integer model file (import_model: the shipped
    models have no checkpoints): state dict, its config, and tokens seen and wall time, for the card."""
    with open(path, "rb") as f:
        is_model_file = f.read(len(MODEL_MAGIC)) == MODEL_MAGIC
    if is_model_file:
        mf = load(path)
        model = import_model(mf)
        return model.state_dict(), model.cfg, int(mf.meta.get("tokens", 0)), float(mf.meta.get("wall_s", 0))
    src = torch.load(path, map_location="cpu", weights_only=False)
    return src["model"], ModelConfig(**src["model_config"]), src["tokens"], src["wall"]


def train(cfg: TrainConfig, mcfg: ModelConfig) -> Path:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "ckpt.pt"
    torch.manual_seed(cfg.seed)
    step, tokens, wall = 0, 0, 0.0
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False) if ckpt_path.exists() else None
    if ckpt:
        mcfg = ModelConfig(**ckpt["model_config"])
    model = TzipModel(mcfg).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    if ckpt:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optim"])
        step, tokens, wall = ckpt["step"], ckpt["tokens"], ckpt["wall"]
        print(f"resumed {ckpt_path} at step {step} ({tokens / 1e6:.1f}M tokens)")
    elif cfg.init_from:
        src, src_cfg, tokens, wall = load_init(cfg.init_from)  # tokens, wall: what the weights have seen
        model.load_state_dict(adapt_weights(src, src_cfg, mcfg))
        print(f"initialised from {cfg.init_from} ({tokens / 1e6:.1f}M tokens)")
    shard = Shard(cfg.shard)
    hint_slots = mcfg.hint_slots
    train_data = Batches(shard, cfg, val=False, seed=cfg.seed + step, predictor=mcfg.audio_predictor,
                         hint_slots=hint_slots)
    val_data = Batches(shard, cfg, val=True, seed=0, predictor=mcfg.audio_predictor, hint_slots=hint_slots)
    print(f"model: {model.n_params() / 1e6:.2f}M params, {mcfg}")
    on_gpu = device == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu else torch.autocast("cpu", enabled=False)
    log = open(out / "log.jsonl", "a")

    def save() -> None:
        state = {"model": model.state_dict(), "optim": opt.state_dict(), "step": step, "device": device,
                 "tokens": tokens, "wall": wall, "model_config": mcfg.to_dict(),
                 "train_config": dataclasses.asdict(cfg)}
        torch.save(state, str(ckpt_path) + ".tmp")
        Path(str(ckpt_path) + ".tmp").replace(ckpt_path)

    t_start, t_last, tok_last = time.time(), time.time(), tokens
    wall0, step0, total = wall, step, cfg.steps
    while step < total:
        if cfg.max_minutes and step > step0 + 10:  # anneal by the deadline if it comes first
            per_step = (time.time() - t_start) / (step - step0)
            reachable = step + int((cfg.max_minutes * 60 - (time.time() - t_start)) / per_step)
            total = max(step + 1, min(cfg.steps, reachable))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg, total)
        feats, phase, y, _, hints = train_data.batch(cfg.batch)
        with autocast:
            logits = model(feats.to(device), phase.to(device), to_device(hints, device))
        loss = F.cross_entropy(logits.float().reshape(-1, 256), y.to(device).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += y.numel()
        wall = wall0 + time.time() - t_start
        if step % 25 == 0:
            rate = (tokens - tok_last) / (time.time() - t_last)
            t_last, tok_last = time.time(), tokens
            rec = {"step": step, "bpb": loss.item() / math.log(2), "lr": lr_at(step, cfg, total),
                   "tokens": tokens, "tok_s": round(rate), "wall_s": round(wall), "device": device}
            if step % cfg.eval_every == 0:
                rec["val_bpb"] = {str(k): round(v, 4) for k, v in evaluate(model, val_data, device).items()}
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if step % cfg.save_every == 0:
            save()
    save()
    model.cpu().eval()
    meta = {"tokens": tokens, "steps": step, "wall_s": round(wall), "device": device,
            "shard": Path(cfg.shard).name}
    path = Path(cfg.export_to or out / "model.tzm")
    model_id = export(model, meta).save(path)
    print(f"exported {path} ({path.stat().st_size} bytes, id {model_id})")
    report = measure_exported(model, path, shard)
    print(json.dumps({"measured": report}))
    log.write(json.dumps({"step": step, "measured": report}) + "\n")
    return path


def measure_exported(model: TzipModel, path: Path, shard: Shard, per_doc: int = 8192) -> dict:
    """Held-out bits/byte per modality: float cross-entropy vs the exported engine's real coder output.

    A model with hint slots reads the shard's hints; the encoder computes the same ones itself
    (stages.hints), cold at the segment's start as the shard's are at the doc's.
    """
    from tzip.codec.encoder import encode_segments
    from tzip.engine.reference import IntModel

    engine = IntModel(load(path))
    with_hints = bool(model.cfg.hint_slots)
    sums: dict[int, list[float]] = {}
    for doc in (d for d in shard.docs if d.val):
        seg = model_order(shard, doc, 0, min(per_doc, doc.length), engine.cfg.audio_predictor).tobytes()
        x = torch.frombuffer(bytearray(seg), dtype=torch.uint8)[None]
        hints = shard.hints_of(doc, 0, len(seg)) if with_hints else None
        with torch.no_grad():
            logits = model(feature_indices(x, doc.layout), phase_indices(torch.arange(len(seg)), doc.layout)[None],
                           None if hints is None else torch.from_numpy(hints.astype(np.int64))[None])
        ce = F.cross_entropy(logits[0].float(), x[0].long(), reduction="sum").item() / math.log(2)
        coded = 8 * len(encode_segments(engine, [seg], doc.layout, ways=("neural",))[0][1])  # the network alone
        acc = sums.setdefault(doc.layout.modality, [0.0, 0.0, 0])
        acc[0], acc[1], acc[2] = acc[0] + ce, acc[1] + coded, acc[2] + len(seg)
    return {str(m): {"float_bpb": round(f / n, 4), "coded_bpb": round(c / n, 4), "gap": round(c / f - 1, 4)}
            for m, (f, c, n) in sums.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for dc in (TrainConfig, ModelConfig):
        for f in dataclasses.fields(dc):
            if f.name == "mixture":
                ap.add_argument("--mixture", type=str, default=None,
                                help="weights text,image,audio[,binary] e.g. 0.5,0.25,0.25")
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            kind = (lambda s: s.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default)
    a = vars(ap.parse_args(argv))
    mix = a.pop("mixture")
    tcfg = TrainConfig(**{k: a[k] for k in (f.name for f in dataclasses.fields(TrainConfig)) if k in a})
    if mix:
        tcfg.mixture = dict(zip((TEXT, IMAGE, AUDIO, BINARY), map(float, mix.split(","))))
    mcfg = ModelConfig(**{k: a[k] for k in (f.name for f in dataclasses.fields(ModelConfig))})
    train(tcfg, mcfg)


if __name__ == "__main__":
    main()
