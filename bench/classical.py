"""tzip's classical-only path: every stage coding as it does, fed a uniform distribution in
place of the network's.

    python -m bench.classical [--model FILE|ID] [--cache DIR]

The baseline is a copy of a model file whose output head (`head.w`, int8 [256, d]) is all zero.
Every logit is then 0 whatever the input, and the engine's softmax gives each of the 256 byte
values the same integer frequency, 2^FREQ_BITS / 256 = 256 (exp2(0) = 2^15 for every value, the
row sum 2^23, each value's weight (2^16 - 256) / 256 + 1 = 256, no rounding deficit). So the
match model, context counts, pixel/sample models and bit mixer, and the stored, zstd and LZMA
fallbacks, run exactly as they do with the shipped network, but learn everything from the
segment itself. The copy is an ordinary model file (its own model id), so it runs through the
same `tzip.compress(data, model=PATH)` path and the bench treats it as one more codec
(`python -m bench.run --classical-only`, `python -m bench.small`). Printing here: the copy's
path and id, and the check that its frequencies are uniform on the C engine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpora.build import default_cache  # noqa: E402
from tzip.engine.constants import FREQ_BITS  # noqa: E402
from tzip.engine.modelfile import IntModelFile, load  # noqa: E402
from tzip.engine.registry import DEFAULT_MODEL, get_model  # noqa: E402
from tzip.format.layout import Layout  # noqa: E402

HEAD = "head.w"


def zero_head(mf: IntModelFile) -> IntModelFile:
    """The same model file with its output head zeroed: every logit 0, a uniform output."""
    tensors = dict(mf.tensors)
    tensors[HEAD] = np.zeros_like(mf.tensors[HEAD])
    meta = {**mf.meta, "classical_only_of": mf.model_id}
    return IntModelFile(dict(mf.config), tensors, meta)


def source_name(spec: str | os.PathLike | None) -> str:
    """A file-name stem for the model a spec names (a path's stem, an id, or the default's)."""
    if spec is None:
        spec = os.environ.get("TZIP_MODEL") or DEFAULT_MODEL
    return Path(spec).stem if Path(spec).suffix == ".tzm" or Path(spec).is_file() else str(spec)


def classical_model(spec: str | os.PathLike | None = None, cache: Path | None = None) -> Path:
    """Path of the head-zeroed copy of model `spec` (a file, an id, None: the default), written
    once (atomically) to CACHE/models/<name>-<source id>-classical.tzm and reused after."""
    src = get_model(spec).file
    d = (cache or default_cache()) / "models"
    path = d / f"{source_name(spec)}-{src.model_id}-classical.tzm"
    if path.exists():
        try:
            mf = load(path)
            if mf.meta.get("classical_only_of") == src.model_id and not mf.tensors[HEAD].any():
                return path
        except (OSError, ValueError, KeyError):
            pass  # a damaged copy: write it again
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(zero_head(src).to_bytes())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def uniformity(spec: str | os.PathLike, data: bytes) -> tuple[int, int]:
    """(smallest, largest) frequency the model gives any byte value at any position of `data`,
    on every layout (text, binary, RGB image rows, stereo 16-bit audio)."""
    model = get_model(spec)
    x = np.frombuffer(data, dtype=np.uint8)
    lo, hi = 1 << FREQ_BITS, 0
    for layout in (Layout.text(), Layout.binary(), Layout.image(3, 3 * 64), Layout.audio(2, 2)):
        f = model.segment_frequencies(x, layout)
        if not (f.sum(axis=1) == 1 << FREQ_BITS).all():
            raise AssertionError("frequencies do not sum to 2^FREQ_BITS")
        lo, hi = min(lo, int(f.min())), max(hi, int(f.max()))
    return lo, hi


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model file or id (default: the shipped model)")
    ap.add_argument("--cache", type=Path, default=default_cache())
    args = ap.parse_args(argv)
    path = classical_model(args.model, args.cache)
    model = get_model(path)
    probe = Path(__file__).read_bytes()[:4096]
    lo, hi = uniformity(path, probe)
    print(f"{path}\nmodel id {model.model_id} (head zeroed from {model.file.meta['classical_only_of']})\n"
          f"frequencies over {len(probe)} positions x 4 layouts: min {lo}, max {hi} "
          f"(uniform: {(1 << FREQ_BITS) // 256})")
    return 0 if lo == hi == (1 << FREQ_BITS) // 256 else 1


if __name__ == "__main__":
    sys.exit(main())
