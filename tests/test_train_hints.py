"""Training side of "the network leads" (docs/DESIGN.md §8): hint embeddings, model-file import,
shards with hints, and a few training steps of a hint model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from corpora import pack
from tests.conftest import DATA, TINY, build_tiny
from tests.test_corpora_bench import make_sets
from tzip.engine.config import ModelConfig
from tzip.engine.features import feature_indices, phase_indices
from tzip.engine.modelfile import load, parse
from tzip.format.layout import ABSENT, N_HINTS, Layout
from tzip.stages.hints import hints_for
from tzip.train.export import export, import_model
from tzip.train.model import TzipModel
from tzip.train.shard import MAGIC, MAGIC_HINTS, Shard, write_shard
from tzip.train.train import Batches, TrainConfig, adapt_weights, load_init, measure_exported, model_order, train

SHIPPED = Path(__file__).parents[1] / "tzip" / "models" / "tzip-small.tzm"
HINTED = ModelConfig(**{**TINY.to_dict(), "hint_slots": N_HINTS})


def inputs(n: int = 300, seed: int = 0):
    """Real text as the model sees it, with arbitrary hints (values 0..ABSENT)."""
    text = (Path(__file__).parent / "data" / "alice_head.txt").read_bytes()[:n]
    x = torch.frombuffer(bytearray(text), dtype=torch.uint8)[None]
    lay = Layout.text()
    hints = torch.from_numpy(np.random.default_rng(seed).integers(0, ABSENT + 1, (1, n, N_HINTS)))
    return feature_indices(x, lay), phase_indices(torch.arange(n), lay)[None], hints


def build_hinted(seed: int = 0, cfg: ModelConfig = HINTED, std: float = 0.3) -> TzipModel:
    """build_tiny with hint slots: random hint tables (a trained model's are not zero), one
    calibration pass with real hints to set the activation scales."""
    torch.manual_seed(seed)
    model = TzipModel(cfg)
    text = (DATA / "alice_head.txt").read_bytes()[:512]
    x = torch.frombuffer(bytearray(text), dtype=torch.uint8)[None]
    hints = torch.from_numpy(hints_for(text, Layout.text()).astype(np.int64))[None]
    with torch.no_grad():
        for emb in model.hints:
            emb.weight.normal_(std=std)
        model.train()
        model(feature_indices(x, Layout.text()), phase_indices(torch.arange(x.shape[1]), Layout.text())[None], hints)
    return model.eval()


def same_tensors(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]), k


def test_shipped_model_imports_exactly():
    """Training resumes from the model file: exporting the imported model gives every integer back."""
    mf = load(SHIPPED)
    model = import_model(mf)
    again = export(model)
    same_tensors(mf.tensors, again.tensors)
    assert ModelConfig(**again.config) == ModelConfig(**mf.config)
    assert all(again.config[k] == v for k, v in mf.config.items())
    # the activation EMAs are what export reads the scales from: all set, none left at zero
    assert all(float(a.amax) > 0 for blk in model.blocks for a in (blk.q_act, blk.k_act, blk.v_act))


def test_import_round_trip_with_hints():
    mf = parse(export(build_hinted(seed=2)).to_bytes())
    again = export(import_model(mf))
    same_tensors(mf.tensors, again.tensors)
    assert again.config == mf.config and again.config["hint_slots"] == N_HINTS


def test_zero_hint_tables_change_nothing():
    """A model that gains hint slots computes exactly what it did, whatever the hints."""
    plain = build_tiny(seed=3)
    hinted = TzipModel(HINTED).eval()
    hinted.load_state_dict(adapt_weights(plain.state_dict(), plain.cfg, hinted.cfg))
    feats, phase, hints = inputs(300)  # not a multiple of the window: padding pads hints too
    with torch.no_grad():
        assert torch.equal(plain(feats, phase), hinted(feats, phase, hints))
    a, b = export(plain), export(hinted)
    assert "embed.hints" not in a.tensors and "hint_slots" not in a.config  # hint-free files are as before
    assert b.tensors["embed.hints"].shape == (N_HINTS, ABSENT + 1, TINY.d_model)
    assert b.tensors["embed.hints"].dtype == np.int32 and not b.tensors["embed.hints"].any()
    same_tensors(a.tensors, {k: v for k, v in b.tensors.items() if k != "embed.hints"})
    with pytest.raises(ValueError, match="hint slots"):
        hinted(feats, phase)
    with pytest.raises(ValueError, match="hint slots"):
        plain(feats, phase, hints)
    with pytest.raises(ValueError, match="hint_slots"):
        ModelConfig(hint_slots=1)


def test_export_writes_the_hint_tables():
    model = build_hinted(seed=4)
    t = export(model).tensors
    want = torch.round(torch.stack([e.weight.detach().double() for e in model.hints]) * 64).to(torch.int32)
    assert t["embed.hints"].shape == (N_HINTS, ABSENT + 1, TINY.d_model)
    assert np.array_equal(t["embed.hints"], want.numpy())
    # the hints reach the logits: the table's rows are looked up per position and slot
    feats, phase, hints = inputs(64)
    with torch.no_grad():
        assert not torch.equal(model(feats, phase, hints), model(feats, phase, torch.full_like(hints, ABSENT)))


def test_old_shards_load_and_gain_hints(tmp_path):
    text = (Path(__file__).parent / "data" / "alice_head.txt").read_bytes()
    docs = [("a", Layout.text(), text[:3000], False), ("b", Layout.text(), text[3000:5000], True)]
    path = tmp_path / "old.shard"
    write_shard(path, docs)
    assert path.read_bytes()[:8] == MAGIC  # without hints, the version 1 format as before
    shard = Shard(path)
    assert shard.hints is None and [bytes(shard.bytes_of(d)) for d in shard.docs] == [d[2] for d in docs]
    cfg = TrainConfig(shard=str(path), seq=256)
    assert Batches(shard, cfg, val=False, seed=0).batch(2)[4] is None
    with pytest.raises(ValueError, match="add-hints"):
        Batches(shard, cfg, val=False, seed=0, hint_slots=N_HINTS)
    pack.main(["--add-hints", str(path)])
    shard = Shard(path)
    assert path.read_bytes()[:8] == MAGIC_HINTS and shard.hints.shape == (5000, N_HINTS)
    for d, (_, lay, data, val) in zip(shard.docs, docs):  # payload kept; hints cold at each doc's start
        assert bytes(shard.bytes_of(d)) == data and d.val == val
        assert np.array_equal(shard.hints_of(d), hints_for(data, lay))


def test_hint_crops_line_up_with_the_targets(tmp_path):
    """Stand-in hints that are the byte itself: every crop's hints must equal its targets."""
    text = (Path(__file__).parent / "data" / "alice_head.txt").read_bytes()
    docs = [("a", Layout.text(), text[:3000], False), ("b", Layout.text(), text[3000:], False)]
    oracle = [np.stack([np.frombuffer(d[2], np.uint8), np.arange(len(d[2])) % 200], 1).astype(np.int16)
              for d in docs]
    path = tmp_path / "oracle.shard"
    write_shard(path, docs, oracle)
    shard = Shard(path)
    feats, _, y, _, hints = Batches(shard, TrainConfig(seq=200), val=False, seed=0, hint_slots=N_HINTS).batch(16)
    assert hints.shape == (16, 200, N_HINTS) and hints.dtype == torch.long
    assert torch.equal(hints[..., 0], y) and torch.equal(hints[:, :-1, 0], feats[:, 1:, 0])


def test_audio_hints_follow_the_predictor(tmp_path, samples):
    make_sets(tmp_path, samples)
    out = tmp_path / "a.shard"
    pack.main([str(out), "--cache", str(tmp_path), "--text-mb", "0", "--image-mb", "0", "--audio-mb", "1",
               "--hints", "--predictor", "2"])
    shard = Shard(out)
    doc = shard.docs[0]
    assert shard.hint_predictor == 2
    assert np.array_equal(shard.hints_of(doc), hints_for(model_order(shard, doc, 0, doc.length, 2), doc.layout))
    with pytest.raises(ValueError, match="predictor"):
        Batches(shard, TrainConfig(seq=256), val=False, seed=0, predictor=0, hint_slots=N_HINTS)


def test_pack_and_train_a_hint_model(tmp_path, samples, tiny_path, monkeypatch):
    make_sets(tmp_path, samples)
    shard_path = tmp_path / "train.shard"
    pack.main([str(shard_path), "--cache", str(tmp_path), "--text-mb", "1", "--image-mb", "1", "--audio-mb", "1",
               "--hints"])
    shard = Shard(shard_path)
    assert {d.layout.modality for d in shard.docs} == {0, 1, 2}
    for d in shard.docs:
        assert np.array_equal(shard.hints_of(d), hints_for(np.array(shard.bytes_of(d)), d.layout))
    mcfg = ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, window=32, block=4, mem_slots=4, hint_slots=2)
    out = tmp_path / "run"
    cfg = TrainConfig(shard=str(shard_path), out=str(out), steps=2, batch=2, seq=128, warmup=1, save_every=1)
    train(cfg, mcfg)
    ckpt = torch.load(out / "ckpt.pt", weights_only=False)
    assert ckpt["step"] == 2
    assert all(ckpt["model"][f"hints.{i}.weight"].any() for i in range(2))  # the hints got gradients
    mf = load(out / "model.tzm")
    assert mf.config["hint_slots"] == 2 and mf.tensors["embed.hints"].shape == (2, ABSENT + 1, 32)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    measured = [r["measured"] for r in log if "measured" in r][-1]
    assert measured and all(v["float_bpb"] > 4 for v in measured.values())

    # the engine's coded figure: the encoder computes the hints the shard holds (cold at the start)
    report = measure_exported(import_model(mf), out / "model.tzm", shard)
    first = next(d for d in shard.docs if d.val)
    seg = model_order(shard, first, 0, min(8192, first.length), 0)
    assert np.array_equal(shard.hints_of(first, 0, len(seg)), hints_for(seg, first.layout))
    assert all(abs(v["gap"]) < 0.1 for v in report.values())

    # a model file (no checkpoint) starts a hint run: the tables join at zero, the rest as exported
    src, src_cfg, _, _ = load_init(str(tiny_path))
    start = ModelConfig(**{**src_cfg.to_dict(), "hint_slots": 2})
    model = TzipModel(start)
    model.load_state_dict(adapt_weights(src, src_cfg, start))
    t = export(model).tensors
    same_tensors(load(tiny_path).tensors, {k: v for k, v in t.items() if k != "embed.hints"})
    cfg = TrainConfig(shard=str(shard_path), out=str(tmp_path / "from_file"), steps=1, batch=2, seq=64,
                      warmup=1, init_from=str(tiny_path))
    train(cfg, start)
    assert load(tmp_path / "from_file" / "model.tzm").config["hint_slots"] == 2
