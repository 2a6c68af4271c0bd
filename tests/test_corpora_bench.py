"""Corpus builders, shard packer and benchmark harness on small real fixtures (no network)."""

from __future__ import annotations

import ast
import io
import json

import numpy as np
import pytest
import torch

from bench import run as bench_run
from bench.codecs import GENERIC, IMAGE, Codec, same_pixels
from corpora import build, pack
from tzip.format.detect import pcm16_channels, predict_residual
from tzip.format.layout import IMAGE as IMAGE_MODALITY
from tzip.train.shard import Shard
from tzip.train.train import Batches, TrainConfig, model_order


def make_sets(cache, samples):
    w = build.SetWriter(cache, "text-bench")
    w.write("alice_head.txt", samples["text"])
    w.finish()
    w = build.SetWriter(cache, "image-bench")
    w.write("crop.ppm", samples["ppm"])
    w.write("crop.pgm", samples["pgm"])
    w.finish()
    for name in ("text-train", "image-train", "audio-train"):
        w = build.SetWriter(cache, name)
        key = {"text-train": "text", "image-train": "ppm", "audio-train": "wav_stereo"}[name]
        for i in range(3):
            w.write(f"{i}.{key}", samples[key] * (i + 1))
        w.finish()


def test_set_manifest_is_deterministic(tmp_path, samples):
    hashes = []
    for _ in range(2):
        make_sets(tmp_path, samples)
        hashes.append(json.loads((tmp_path / "sets/text-bench/manifest.json").read_text())["manifest_sha256"])
    assert hashes[0] == hashes[1]


def test_builder_helpers(tmp_path):
    from PIL import Image

    root = tmp_path / "usr/share/wordnet"
    root.mkdir(parents=True)
    (root / "data.noun").write_bytes(b"  copyright line\n00001740 03 n 01 entity 0 | that which exists\n")
    assert build.wordnet_glosses(tmp_path) == b"that which exists\n"
    img = Image.new("RGB", (16, 8), (10, 20, 30))
    assert build.ppm_bytes(img) == b"P6\n16 8\n255\n" + bytes([10, 20, 30]) * 128
    samples = np.arange(-50, 50, dtype=np.int16)[:, None]
    wav = build.wav_bytes(samples, 8000)
    import soundfile as sf

    back, rate = sf.read(io.BytesIO(wav), dtype="int16", always_2d=True)
    assert rate == 8000 and np.array_equal(back, samples)


def test_pack_shard_and_training_batches(tmp_path, samples):
    make_sets(tmp_path, samples)
    out = tmp_path / "train.shard"
    pack.main([str(out), "--cache", str(tmp_path), "--text-mb", "1", "--image-mb", "1", "--audio-mb", "1"])
    shard = Shard(out)
    modalities = {d.layout.modality for d in shard.docs}
    assert modalities == {0, 1, 2}
    assert any(d.val for d in shard.docs)
    image = next(d for d in shard.docs if d.layout.modality == IMAGE_MODALITY)
    assert image.layout.offsets[1] == 48 * 3  # a PPM row: 48 RGB pixels
    cfg = TrainConfig(shard=str(out), seq=256)
    feats, phase, y, mods = Batches(shard, cfg, val=False, seed=0).batch(8)
    assert feats.shape == (8, 256, 4) and y.shape == (8, 256) and len(mods) == 8
    # features are the real earlier bytes, even before the crop start
    assert int(feats[..., 0].max()) <= 256 and int(phase.max()) < 64
    # with an audio predictor, any frame-aligned crop is the residual of its whole doc, as coded
    audio = next(d for d in shard.docs if d.layout.modality == 2)
    channels = pcm16_channels(audio.layout)
    full = predict_residual(bytes(shard.bytes_of(audio, 0, 4000)), channels, 2)
    for start in (0, 2 * channels, 100 * channels):
        assert model_order(shard, audio, start, 4000, 2).tobytes() == full[start:]
    assert model_order(shard, image, 0, 500, 2).tobytes() == bytes(shard.bytes_of(image, 0, 500))
    _, _, y2, _ = Batches(shard, cfg, val=False, seed=0, predictor=2).batch(8)
    assert y2.shape == y.shape


def test_harness_reports_sizes_and_catches_a_broken_codec(tmp_path, samples):
    make_sets(tmp_path, samples)
    broken = Codec("broken", ("text",), lambda d: d[::-1], lambda d: d)  # decodes to the wrong bytes
    codecs = [GENERIC[0], broken, IMAGE[0]]
    res = bench_run.run(["text", "image"], codecs, tmp_path, 0, log=lambda *_: None)
    text = res["modalities"]["text"]["codecs"]
    assert text["gzip -9"]["ok"] and text["gzip -9"]["bytes"] < len(samples["text"])
    assert not text["broken"]["ok"]
    assert res["modalities"]["image"]["codecs"]["PNG (Pillow, optimize)"]["ok"]
    md = bench_run.markdown(res)
    assert "FAILED" in md and "gzip -9" in md


def test_missing_codec_is_reported_not_dropped(tmp_path, samples, monkeypatch):
    make_sets(tmp_path, samples)
    monkeypatch.setenv("PATH", str(tmp_path))  # no cjxl here
    jxl = next(c for c in IMAGE if c.name.startswith("JPEG-XL"))
    res = bench_run.run(["image"], [jxl], tmp_path, 0, log=lambda *_: None)
    assert "cjxl not found" in res["missing"][jxl.name]


def test_grey_pixels_decoded_as_rgb_compare_equal(samples):
    from PIL import Image

    grey = Image.open(io.BytesIO(samples["pgm"]))
    buf = io.BytesIO()
    grey.convert("RGB").save(buf, format="PNG")
    assert same_pixels(samples["pgm"], buf.getvalue())
    assert not same_pixels(samples["pgm"], samples["ppm"])


@pytest.mark.parametrize("limit", [0, 10])
def test_bench_file_selection(tmp_path, samples, limit):
    make_sets(tmp_path, samples)
    files = bench_run.bench_files(tmp_path, "image", limit)
    assert [f.name for f in files] == (["crop.pgm", "crop.ppm"] if not limit else ["crop.pgm"])  # smaller first


def test_training_resumes_exports_and_measures(tmp_path, samples):
    from tzip.engine.config import ModelConfig
    from tzip.engine.modelfile import load
    from tzip.train.train import train

    make_sets(tmp_path, samples)
    shard = tmp_path / "train.shard"
    pack.main([str(shard), "--cache", str(tmp_path), "--text-mb", "1", "--image-mb", "1", "--audio-mb", "1"])
    mcfg = ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, window=32, block=4, mem_slots=4)
    out = tmp_path / "run"
    cfg = TrainConfig(shard=str(shard), out=str(out), steps=2, batch=2, seq=128, warmup=1, save_every=1)
    train(cfg, mcfg)
    first = torch.load(out / "ckpt.pt", weights_only=False)
    assert first["step"] == 2 and (out / "model.tzm").exists()
    cfg.steps = 4
    train(cfg, mcfg)  # resumes from the checkpoint instead of starting over
    second = torch.load(out / "ckpt.pt", weights_only=False)
    assert second["step"] == 4 and second["tokens"] == 2 * first["tokens"]
    assert load(out / "model.tzm").meta["steps"] == 4
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    measured = [r["measured"] for r in log if "measured" in r]
    assert measured and measured[-1]
    for v in measured[-1].values():  # real coded sizes of a barely trained model: near its float loss
        assert v["coded_bpb"] > 4 and abs(v["gap"]) < 0.1


def test_ablation_table_reports_real_coded_sizes(tmp_path, samples, tiny_path):
    import tzip
    from bench import ablate

    make_sets(tmp_path, samples)
    out = tmp_path / "ablate.md"
    ablate.main([f"tiny={tiny_path}", "--sets", "text,image", "--limit", "0", "--cache", str(tmp_path),
                 "--workers", "1", "--out", str(out)])
    row = [line for line in out.read_text().splitlines() if line.startswith("| tiny")][0]
    text = samples["text"]
    want = 8 * len(tzip.compress(text, model=str(tiny_path), methods=("neural",))) / len(text)
    assert f"{want:.3f}" == row.split("|")[4].strip()


def test_prior_tuning_scores_the_shipped_setting_like_the_coder(tmp_path, capsys):
    """bench.priors' reference run of the shipped configurations gives the C model's ideal code length."""
    from bench import priors
    from tzip.codec.encoder import code_length
    from tzip.engine.registry import get_model
    from tzip.format.layout import Layout
    from tzip.stages import counts, match

    from .conftest import DATA

    text = (DATA / "alice_head.txt").read_bytes()[:3000]
    (tmp_path / "t.txt").write_bytes(text)
    x = np.frombuffer(text, dtype=np.uint8)
    matched = match.apply(x, get_model().segment_frequencies(x, Layout.text()))
    for setting, config in (("context", counts.CONTEXT), ("2,3,4/256,64,16", counts.CONTEXT1)):
        priors.main([str(tmp_path / "t.txt:0:3000"), "--settings", setting])
        want = code_length(x, counts.apply(x, matched, config))
        assert capsys.readouterr().out.strip().endswith(f"{want / len(x):.4f}")


def test_prior_fit_learns_a_table_that_codes_shorter(tmp_path, capsys):
    """Fitting beta on a file gives a table whose integer blend codes that file no longer than
    the first, flat priors: the fit optimises what the coder spends."""
    from bench import priors
    from tzip.stages import counts

    from .conftest import DATA

    (tmp_path / "t.txt").write_bytes((DATA / "alice_head.txt").read_bytes())
    priors.main([str(tmp_path / "t.txt"), "--fit", "--orders", "2,3,4"])
    out = capsys.readouterr().out
    fitted = float(out.split("coder's integers, fitted on 1 files: ")[1].split()[0])
    table = ast.literal_eval(out[out.index("\n(\n") + 1 :])  # the printed literal for counts.py
    config = counts.Config((2, 3, 4), table)
    priors.main([str(tmp_path / "t.txt"), "--settings", "2,3,4/256,64,16"])
    flat = float(capsys.readouterr().out.strip().split()[-1])
    assert config.orders == (2, 3, 4) and fitted < flat


def test_bench_run_writes_its_table_between_the_readme_markers(tmp_path):
    from bench.run import BEGIN, END, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n{BEGIN}\nold table\n{END}\n\nafter\n")
    assert update_readme("| new | table |\n", readme)
    assert readme.read_text() == f"# t\n\n{BEGIN}\n| new | table |\n{END}\n\nafter\n"
    readme.write_text("no markers\n")
    assert not update_readme("| x |", readme) and readme.read_text() == "no markers\n"
