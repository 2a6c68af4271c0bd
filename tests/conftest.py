"""Shared fixtures: real data excerpts and a tiny model exported on the fly.

The tiny model is randomly initialised (after one calibration pass so its activation scales
are set) — exactness does not depend on training, and its small window/memory (W=16, c=4,
M=4) makes short inputs cross every window and memory boundary.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")  # Triton kernels run on the CPU in tests (test_triton.py)
from pathlib import Path

import pytest
import torch

from tzip.engine.config import ModelConfig
from tzip.engine.features import feature_indices, phase_indices
from tzip.engine.modelfile import parse
from tzip.engine.reference import IntModel
from tzip.format.layout import Layout
from tzip.train.export import export
from tzip.train.model import TzipModel

DATA = Path(__file__).parent / "data"
TINY = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, window=16, block=4, mem_slots=4)


def build_tiny(seed: int = 0, cfg: ModelConfig = TINY) -> TzipModel:
    torch.manual_seed(seed)
    model = TzipModel(cfg)
    text = (DATA / "alice_head.txt").read_bytes()[:512]
    x = torch.frombuffer(bytearray(text), dtype=torch.uint8)[None]
    model.train()
    with torch.no_grad():
        model(feature_indices(x, Layout.text()), phase_indices(torch.arange(x.shape[1]), Layout.text())[None])
    return model.eval()


@pytest.fixture(scope="session")
def tiny_float() -> TzipModel:
    return build_tiny()


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory, tiny_float) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.tzm"
    export(tiny_float).save(path)
    return path


@pytest.fixture(scope="session")
def tiny(tiny_path) -> IntModel:
    return IntModel(parse(tiny_path.read_bytes()))


@pytest.fixture(scope="session")
def misled(tiny) -> IntModel:
    """The tiny model with a random output head 16 times as sharp: confident and wrong, worse than
    no network."""
    import numpy as np

    from tzip.engine.modelfile import IntModelFile

    t = dict(tiny.file.tensors)
    t["head.w"] = np.random.default_rng(3).integers(-127, 128, t["head.w"].shape).astype(t["head.w"].dtype)
    t["head.shift"] = t["head.shift"] - 4
    return IntModel(parse(IntModelFile(dict(tiny.file.config), t, dict(tiny.file.meta)).to_bytes()))


def pnm(png: str, mode: str) -> bytes:
    """A PNG fixture as a binary PGM (mode "L") or PPM ("RGB")."""
    from PIL import Image

    img = Image.open(DATA / png).convert(mode)
    return f"P{5 if mode == 'L' else 6}\n{img.width} {img.height}\n255\n".encode() + img.tobytes()


@pytest.fixture(scope="session")
def samples() -> dict[str, bytes]:
    """Real files of every modality, in the containers tzip keeps verbatim."""
    from PIL import Image

    out = {
        "text": (DATA / "alice_head.txt").read_bytes(),
        "wav_mono": (DATA / "speech.wav").read_bytes(),
        "wav_stereo": (DATA / "music_stereo.wav").read_bytes(),
        "random": os.urandom(3000),
    }
    rgb = Image.open(DATA / "astronaut_crop.png").convert("RGB")
    out["pgm"] = pnm("camera_crop.png", "L")
    out["ppm"] = pnm("astronaut_crop.png", "RGB")
    for fmt, key in (("BMP", "bmp"), ("TIFF", "tiff")):
        buf = io.BytesIO()
        rgb.save(buf, format=fmt)
        out[key] = buf.getvalue()
    out["png"] = (DATA / "astronaut_crop.png").read_bytes()
    return out


@pytest.fixture(autouse=True)
def one_thread():
    """Small integer ops run fastest on one intra-op thread (tests that vary it restore it)."""
    torch.set_num_threads(1)
    yield


def cli(tiny_path, *args, stdin: bytes | None = None) -> bytes:
    """`tzip ARGS` in a subprocess with the tiny model; its standard output."""
    env = {**os.environ, "TZIP_MODEL": str(tiny_path), "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "tzip.cli", *map(str, args)], env=env, check=True,
                          input=stdin, capture_output=True, timeout=300).stdout
