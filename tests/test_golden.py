"""Golden streams: every shipped model's streams still decode and re-encode byte for byte.

The integer arithmetic of the engine and of every stage is part of the format, and a .tz stream
names the model that made it, so a stream made by any model shipped in tzip/models must decode
forever, including those of earlier default models. tests/data/golden/<model>/ holds, for each
shipped model, one stream per coding method (the cases below); a test fails if the engine or a
stage changes a single bit, if a shipped model has no goldens, or if a stream stops being found by
its model id alone.

A new shipped model gets its goldens with:

    python -m tests.test_golden tzip/models/<name>.tzm

and a case added for a new coding method gets its streams, every other golden left as it is, with
`python -m tests.test_golden tzip/models/<name>.tzm CASE`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import tzip
from tzip.engine import native
from tzip.engine.modelfile import load
from tzip.engine.registry import DEFAULT_MODEL, MODELS_DIR
from tzip.format import container as C
from tzip.format.methods import DEFAULT

from .conftest import DATA, pnm

GOLDEN = DATA / "golden"


def alice(n: int) -> Callable[[], bytes]:
    return lambda: (DATA / "alice_head.txt").read_bytes()[:n]


def records_sample() -> bytes:
    """Text, then a table of 16-byte records (a counter, zeros, a small cycle, a tag): the word,
    sparse and record contexts of method 10 all take part."""
    rows = b"".join(i.to_bytes(4, "little") + bytes(6) + bytes([i % 7, 0x40]) + b"row\0" for i in range(200))
    return alice(3000)() + rows


WITHOUT_BITS_NET = tuple(m for m in DEFAULT if m != "bits-net")
WITHOUT_BITS = tuple(m for m in DEFAULT if m != "bits")  # 4 KiB of text: the trial would keep method 8


@dataclass(frozen=True)
class Case:
    """One golden stream: its input, how it is compressed, and the segment methods it must hold."""

    data: Callable[[], bytes]
    kwargs: dict = field(default_factory=dict)
    methods: list[int] | None = None
    chained: bool = False
    needs_c: bool = False


CASES: dict[str, Case] = {
    # the network alone (method 2)
    "alice_head": Case(alice(2000), dict(methods=("neural",), segment_size=65536)),
    # the adaptive stages, unchained: match model (3), first context counts (4), context counts (5),
    # the bit mixer (8)
    "alice_head.match": Case(alice(4000), dict(methods=("match",), segment_size=65536, chain=False)),
    "alice_head.context1": Case(alice(4000), dict(methods=("context1",), segment_size=65536, chain=False)),
    "alice_head.context": Case(alice(4000), dict(methods=("context",), segment_size=65536, chain=False)),
    "alice_head.bits": Case(alice(4000), dict(methods=("bits",), segment_size=65536, chain=False)),
    # a chain of four 1 KiB bit-mixer segments: the chain's rule is part of the format; with method 8
    # (as text chains were coded before method 14) and with method 14, the bit mixer given the
    # network's own row too
    "alice_head.chained": Case(alice(4000), dict(segment_size=1024, methods=WITHOUT_BITS_NET), methods=[C.BITS] * 4,
                               chained=True, needs_c=True),
    "alice_head.chained-net": Case(alice(4000), dict(segment_size=1024, methods=WITHOUT_BITS), methods=[C.BITS_NET] * 4,
                                   chained=True, needs_c=True),
    # the pixel model (6) on a grey and an RGB image, the sample model (7) on speech
    "camera_crop.pixels": Case(lambda: pnm("camera_crop.png", "L"), dict(methods=("pixels",))),
    "astronaut_crop.pixels": Case(lambda: pnm("astronaut_crop.png", "RGB"), dict(methods=("pixels",))),
    # the pixel model's stages over a uniform distribution, without the network (12)
    "astronaut_crop.classical-pixels": Case(lambda: pnm("astronaut_crop.png", "RGB"),
                                            dict(methods=("classical-pixels",)), methods=[C.CLASSICAL_PIXELS]),
    "speech.samples": Case(lambda: (DATA / "speech.wav").read_bytes(), dict(methods=("samples",), segment_size=16384)),
    # the sample model's stages over a uniform distribution (13)
    "speech.classical-samples": Case(lambda: (DATA / "speech.wav").read_bytes(),
                                     dict(methods=("classical-samples",), segment_size=16384)),
    # a chained binary stream: the classical way coded bit by bit (10), and its stages fed the
    # network's distribution (11)
    "classical": Case(records_sample, dict(modality="binary", methods=("classical",), segment_size=2048),
                      chained=True),
    "sparse": Case(records_sample, dict(modality="binary", methods=("sparse",), segment_size=2048),
                   methods=[C.SPARSE] * 4, chained=True),
}


def shipped_models() -> list[Path]:
    return sorted(MODELS_DIR.glob("*.tzm"))


def segment_methods(packed: bytes) -> list[int]:
    return [f.method for _, frames in C.streams(packed) for f in frames if f.kind == C.FRAME_SEGMENT]


def golden_path(model: Path, name: str) -> Path:
    return GOLDEN / model.stem / f"{name}.golden.tz"


def test_every_shipped_model_has_its_goldens():
    assert (MODELS_DIR / DEFAULT_MODEL) in shipped_models()
    for model in shipped_models():
        missing = [name for name in CASES if not golden_path(model, name).exists()]
        assert not missing, f"{model.name} has no golden streams for {missing}: python -m tests.test_golden {model}"
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(m.stem for m in shipped_models())


@pytest.mark.parametrize("model", shipped_models(), ids=lambda p: p.stem)
@pytest.mark.parametrize("name", list(CASES))
def test_golden_stream(model: Path, name: str):
    case = CASES[name]
    if case.needs_c and not native.available():
        pytest.skip("the C library is unavailable")
    golden = golden_path(model, name).read_bytes()
    data = case.data()
    assert golden[6:14] == bytes.fromhex(load(model).model_id), "the golden stream is from another model"
    if case.methods is not None:
        assert segment_methods(golden) == case.methods
    assert C.Header.unpack(golden[: C.HEADER_SIZE]).chained == case.chained
    assert tzip.decompress(golden) == data  # found by the stream's model id alone
    assert tzip.compress(data, model=model, **case.kwargs) == golden


@pytest.mark.parametrize("model", shipped_models(), ids=lambda p: p.stem)
def test_the_network_makes_the_records_sample_smaller(model: Path):
    """On this text-led sample every shipped network is worth something through method 11."""
    sparse = golden_path(model, "sparse").read_bytes()
    assert len(sparse) < len(golden_path(model, "classical").read_bytes())


def regenerate(model: Path, names: list[str] | None = None) -> None:
    """Write the model's goldens: every case, or the cases named (a case added later: the others stay
    as they were made)."""
    out = GOLDEN / model.stem
    out.mkdir(parents=True, exist_ok=True)
    for name, case in CASES.items():
        if names and name not in names:
            continue
        packed = tzip.compress(case.data(), model=model, **case.kwargs)
        assert tzip.decompress(packed, model=model) == case.data()
        (out / f"{name}.golden.tz").write_bytes(packed)
        print(f"{out / name}.golden.tz: {len(packed)} bytes")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tests.test_golden MODEL.tzm [CASE ...]")
    regenerate(Path(sys.argv[1]), sys.argv[2:])
