"""The tzip command through a subprocess, as a gzip user would drive it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile

import pytest
import torch

import tzip

TZIP = [sys.executable, "-m", "tzip.cli"]


@pytest.fixture
def env(tiny_path):
    return {**os.environ, "TZIP_MODEL": str(tiny_path), "PYTHONPATH": os.getcwd()}


def tz(env, *args, input=None, cwd=None, check=True):
    r = subprocess.run([*TZIP, *map(str, args)], input=input, capture_output=True, env=env, cwd=cwd, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}: {r.stderr.decode()}")
    return r


def test_compress_decompress_files_keep_force_and_exists(env, tmp_path, samples):
    a, b = tmp_path / "a.txt", tmp_path / "b.wav"
    a.write_bytes(samples["text"])
    b.write_bytes(samples["wav_mono"])
    tz(env, a, b)  # several files, gzip short form
    assert a.exists() and (tmp_path / "a.txt.tz").exists() and (tmp_path / "b.wav.tz").exists()
    r = tz(env, a, check=False)  # output exists
    assert r.returncode == 1 and b"already exists" in r.stderr and b"Traceback" not in r.stderr
    tz(env, "-f", "-v", a)
    a.unlink()
    b.unlink()
    tz(env, "-d", tmp_path / "a.txt.tz", tmp_path / "b.wav.tz")
    assert a.read_bytes() == samples["text"] and b.read_bytes() == samples["wav_mono"]
    tz(env, "decompress", "-f", tmp_path / "a.txt.tz")
    assert a.read_bytes() == samples["text"]


def test_stdin_stdout_and_output_option(env, tmp_path, samples):
    packed = tz(env, "-c", "-", input=samples["ppm"]).stdout
    assert tz(env, "-d", input=packed).stdout == samples["ppm"]
    tz(env, "-o", tmp_path / "x.tz", "-", input=samples["text"])
    tz(env, "-d", "-o", tmp_path / "x", tmp_path / "x.tz")
    assert (tmp_path / "x").read_bytes() == samples["text"]
    assert tz(env, "-dc", tmp_path / "x.tz").stdout == samples["text"]


def test_rm_removes_input_only_after_verified_output(env, tmp_path, samples):
    a = tmp_path / "a.txt"
    a.write_bytes(samples["text"])
    tz(env, "--rm", a)
    assert not a.exists() and (tmp_path / "a.txt.tz").exists()
    tz(env, "-d", "--rm", tmp_path / "a.txt.tz")
    assert a.read_bytes() == samples["text"] and not (tmp_path / "a.txt.tz").exists()


def test_bad_input_one_error_no_partial_output(env, tmp_path):
    bad = tmp_path / "bad.tz"
    bad.write_bytes(b"this is not a tzip stream at all")
    r = tz(env, "-d", bad, check=False)
    assert r.returncode == 1
    assert r.stderr.decode().count("\n") == 1 and "not a tzip stream" in r.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tz"]
    r = tz(env, "-d", tmp_path / "missing.tz", check=False)
    assert r.returncode == 1 and b"cannot read" in r.stderr
    r = tz(env, "-d", tmp_path / "nosuffix", check=False)
    assert r.returncode == 1 and b"unknown suffix" in r.stderr


def test_truncated_stream_leaves_nothing(env, tmp_path, samples):
    a = tmp_path / "a.txt"
    a.write_bytes(samples["text"])
    tz(env, a)
    data = (tmp_path / "a.txt.tz").read_bytes()
    (tmp_path / "a.txt.tz").write_bytes(data[: len(data) // 2])
    a.unlink()
    r = tz(env, "-d", tmp_path / "a.txt.tz", check=False)
    assert r.returncode == 1 and b"truncated" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt.tz"]


def test_usage_errors_exit_2(env, tmp_path):
    assert tz(env, "--no-such-flag", check=False).returncode == 2
    assert tz(env, "--mode", "video", "-", input=b"x", check=False).returncode == 2
    r = tz(env, "-o", tmp_path / "o", tmp_path / "a", tmp_path / "b", check=False)
    assert r.returncode == 2


def test_info_and_modes(env, tmp_path, samples):
    a = tmp_path / "s.wav"
    a.write_bytes(samples["wav_stereo"])
    tz(env, a)
    out = tz(env, "info", tmp_path / "s.wav.tz").stdout.decode()
    assert "modality      audio" in out and "model id" in out and "segments" in out
    tz(env, "--mode", "binary", "-f", a)
    assert "modality      binary" in tz(env, "info", tmp_path / "s.wav.tz").stdout.decode()


def test_transcode_png(env, tmp_path, samples):
    from PIL import Image

    p = tmp_path / "img.png"
    p.write_bytes(samples["png"])
    tz(env, "--transcode", p)
    assert "transcoded    from PNG" in tz(env, "info", tmp_path / "img.png.tz").stdout.decode()
    p.unlink()
    tz(env, "-d", tmp_path / "img.png.tz")
    original = Image.open(__import__("io").BytesIO(samples["png"]))
    assert Image.open(p).convert("RGBA").tobytes() == original.convert("RGBA").tobytes()


def test_tar_integration(env, tmp_path, samples):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(samples["text"])
    (src / "b.pgm").write_bytes(samples["pgm"])
    wrapper = tmp_path / "tzipw"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m tzip.cli \"$@\"\n")
    wrapper.chmod(0o755)
    archive = tmp_path / "a.tar.tz"
    subprocess.run(["tar", f"--use-compress-program={wrapper}", "-cf", archive, "-C", tmp_path, "src"],
                   check=True, env=env)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", f"--use-compress-program={wrapper}", "-xf", archive, "-C", out], check=True, env=env)
    assert (out / "src/a.txt").read_bytes() == samples["text"]
    with tarfile.open(fileobj=__import__("io").BytesIO(tz(env, "-dc", archive).stdout)) as t:
        assert sorted(t.getnames()) == ["src", "src/a.txt", "src/b.pgm"]


def test_remaining_flags(env, tmp_path, samples):
    a = tmp_path / "a.txt"
    a.write_bytes(samples["text"])
    a.chmod(0o640)
    r = tz(env, "-q", "-k", "--threads", "2", "--segment-size", "1024", "--device", "cpu", a)
    assert r.stderr == b"" and a.exists()
    assert (tmp_path / "a.txt.tz").stat().st_mode & 0o777 == 0o640  # permissions follow the input
    info = tz(env, "info", tmp_path / "a.txt.tz").stdout.decode()
    assert "segment size  1024, chained" in info  # text chains its segments by default
    assert tz(env, "-dc", "--threads", "2", tmp_path / "a.txt.tz").stdout == samples["text"]
    chained = (tmp_path / "a.txt.tz").read_bytes()
    tz(env, "-f", "--independent", "--segment-size", "1024", a)
    assert "segment size  1024\n" in tz(env, "info", tmp_path / "a.txt.tz").stdout.decode()
    assert len((tmp_path / "a.txt.tz").read_bytes()) > len(chained)
    assert tz(env, "-dc", tmp_path / "a.txt.tz").stdout == samples["text"]
    if not torch.cuda.is_available():
        r = tz(env, "--device", "cuda", "-f", a, check=False)
        assert r.returncode == 1 and b"no CUDA device" in r.stderr
    r = tz(env, "--segment-size", "10", "-f", a, check=False)
    assert r.returncode == 2 and b"segment_size" in r.stderr


def test_the_engine_in_use_is_reported(env, tmp_path, samples):
    """-v names the engine and its CPU level; a C library that cannot load gets one note (the output is the
    same), TZIP_NATIVE=0 none."""
    src = tmp_path / "a.txt"
    src.write_bytes(samples["text"][:3000])
    fast = tz(env, "-v", "-c", src)
    assert b"engine: C" in fast.stderr
    assert re.search(rb"engine: C \((portable|avx2|avx512)\)", fast.stderr)
    no_cc = {**env, "TZIP_NATIVE_BUILD": "1", "CC": str(tmp_path / "no-cc"), "TZIP_CACHE_DIR": str(tmp_path / "cache")}
    slow = tz(no_cc, "-c", src)
    assert b"engine: PyTorch, much slower" in slow.stderr and slow.stdout == fast.stdout
    quiet = tz({**env, "TZIP_NATIVE": "0"}, "-c", src)
    assert quiet.stderr == b"" and quiet.stdout == fast.stdout


def test_version_names_the_default_model_and_the_engine(env, tiny):
    for flag in ("--version", "-V"):
        out = tz(env, flag).stdout.decode()
        assert out.startswith(f"tzip {tzip.__version__}; default model ") and f"(id {tiny.model_id})" in out
        assert "engine" in out


def test_list_shows_sizes_ratio_modality_and_methods_like_xz(env, tmp_path, samples):
    a, b = tmp_path / "a.txt", tmp_path / "b.wav"
    a.write_bytes(samples["text"][:3000])
    b.write_bytes(samples["wav_mono"])
    tz(env, a, b)
    out = tz(env, "-l", f"{a}.tz", f"{b}.tz").stdout.decode().splitlines()
    assert out[0].split() == ["compressed", "uncompressed", "ratio", "modality", "methods", "name"]
    row = out[1].split()
    assert row[0] == f"{(tmp_path / 'a.txt.tz').stat().st_size:,}" and row[1] == "3,000" and row[3] == "text"
    assert row[-1] == f"{a}.tz" and "audio" in out[2] and out[3].endswith("(2 files)")
    bad = tz(env, "--list", f"{a}.tz", str(a), check=False)
    assert bad.returncode == 1 and b"not a tzip stream" in bad.stderr and f"{a}.tz".encode() in bad.stdout
