"""Finding and loading integer model files: by path, by model id, or the shipped default.

Search path: $TZIP_MODEL_PATH (os.pathsep-separated directories or files), then the
package's models/ folder (tzip/models). Loaded models are cached per id.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

from tzip.engine.base import Model
from tzip.engine.modelfile import IntModelFile, ModelFileError, load
from tzip.errors import TzipError

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"  # package data: the shipped models and their cards
DEFAULT_MODEL = "tzip-small-3.tzm"
_cache: dict[str, Model] = {}
_ids: dict[Path, str] = {}


def search_path() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("TZIP_MODEL_PATH", "").split(os.pathsep) if p]
    return [*extra, MODELS_DIR]


def from_file(mf: IntModelFile) -> Model:
    """The model on the fastest CPU engine here: the C library, else the PyTorch reference (torch
    is imported only then)."""
    from tzip.engine import native

    if native.available():
        from tzip.engine.cpu import CpuModel, UnsupportedShape

        try:
            return CpuModel(mf)
        except UnsupportedShape:
            pass
    try:
        from tzip.engine.reference import IntModel
    except ImportError:
        raise TzipError(f"no engine can run model {mf.model_id}: the C engine is unavailable "
                        f"({native.unavailable_reason() or 'unsupported model shape'}) and torch, "
                        "which the reference engine needs, is not installed") from None
    return IntModel(mf)


def _load_path(path: Path) -> Model:
    try:
        mf = load(path)
        if mf.model_id not in _cache:
            _cache[mf.model_id] = from_file(mf)
    except (OSError, ModelFileError, ValueError) as e:
        raise TzipError(f"cannot load model {path}: {e}") from None
    _ids[path.resolve()] = mf.model_id
    return _cache[mf.model_id]


def candidates() -> list[Path]:
    out = [Path(os.environ["TZIP_MODEL"])] if os.path.isfile(os.environ.get("TZIP_MODEL", "")) else []
    for p in search_path():
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted(p.glob("*.tzm")))
    return out


def get_model(spec: str | os.PathLike | None = None) -> Model:
    """A model by file path, by model id, or (None) the default model."""
    if spec is None:
        spec = os.environ.get("TZIP_MODEL") or DEFAULT_MODEL
    path = Path(spec)
    if path.is_file():
        return _load_path(path)
    if isinstance(spec, str) and len(spec) == 16 and set(spec) <= set(string.hexdigits):
        return model_by_id(spec)
    for p in candidates():
        if str(spec) in (p.name, p.stem):  # a shipped model by its file name, with or without .tzm
            return _load_path(p)
    raise TzipError(f"model {spec} not found (searched {', '.join(map(str, search_path()))})")


def model_by_id(model_id: str) -> Model:
    if model_id in _cache:
        return _cache[model_id]
    for p in candidates():
        known = _ids.get(p.resolve())
        if known is None or known == model_id:
            m = _load_path(p)
            if m.model_id == model_id:
                return m
    raise TzipError(
        f"model {model_id} is needed to decompress this stream but is not available; "
        f"put its .tzm file in a directory on TZIP_MODEL_PATH or pass --model FILE"
    )


DEVICES = ("auto", "cpu", "cuda")
_on_device: dict[tuple[str, str], Model] = {}


def _nvidia_driver() -> bool:
    """An NVIDIA driver is loaded (checked without importing torch, which costs seconds)."""
    return os.path.exists("/proc/driver/nvidia/version")


def resolve_device(device: str) -> str:
    """'auto' is the Triton backend where CUDA is present and torch and triton are installed,
    else the CPU engine; torch is imported only where a GPU may be used."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}")
    if device == "cpu" or (device == "auto" and not _nvidia_driver()):
        return "cpu"
    try:
        import torch
    except ImportError:
        if device == "auto":
            return "cpu"
        raise TzipError("--device cuda needs torch and triton: pip install 'tzip[gpu]'") from None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise TzipError("--device cuda: no CUDA device is available here (use --device cpu)")
    return device


def on_device(model: Model, device: str) -> Model:
    """The model on the engine for `device`: the PyTorch CPU engine or the Triton kernels."""
    device = resolve_device(device)
    if device == "cpu" or not model.on_cpu:  # a model on the GPU already is on the one GPU device
        return model
    key = (model.model_id, device)
    if key not in _on_device:
        try:
            from tzip.engine.triton_backend import TritonModel
        except ImportError as e:
            raise TzipError(f"the GPU backend needs triton ({e}); pip install triton") from None
        _on_device[key] = TritonModel(model.file, device)
    return _on_device[key]


def reference(model: Model) -> Model:
    """The same model on the PyTorch reference engine (needs torch): what tests and tools compare
    the other engines with."""
    from tzip.engine.reference import IntModel

    return model if isinstance(model, IntModel) else IntModel(model.file)
