"""tzip beyond one machine: fsspec, numcodecs/Zarr and Dask distributed.

- `tzip.integrations.fsspec`: tzip as an fsspec compression ("tzip", extension "tz").
- `tzip.integrations.numcodecs`: the numcodecs codec `Tzip` (id "tzip"), for Zarr v2 arrays.
- `tzip.integrations.zarr`: `TzipCodec`, the same as a Zarr v3 array-to-bytes codec.
- `tzip.integrations.dask`: `compress_files`/`decompress_files` on a Dask distributed cluster
  (what `tzip --scheduler ADDRESS` runs), byte-identical to a local run.

None of these is imported by `import tzip` or the `tzip` command (their dependencies are the
optional extra `tzip[cluster]`). Importing this package registers tzip with fsspec and
numcodecs where they are installed, since fsspec reads no entry points for compressions; the
Dask driver loads only when one of its names is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tzip.integrations.dask import compress_files, decompress_files

__all__ = ["compress_files", "decompress_files"]

try:
    from tzip.integrations import fsspec as _fsspec  # noqa: F401  (registers the compression)
except ImportError:  # fsspec is not installed
    pass
try:
    from tzip.integrations import numcodecs as _numcodecs  # noqa: F401  (registers the codec)
except ImportError:  # numcodecs is not installed
    pass


def __getattr__(name: str):
    if name in __all__:
        from tzip.integrations import dask

        return getattr(dask, name)
    raise AttributeError(f"module 'tzip.integrations' has no attribute {name!r}")
