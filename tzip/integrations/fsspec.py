"""tzip as an fsspec compression: `fsspec.open("data.txt.tz", "rb", compression="infer")`.

fsspec layers a compression over any of its file systems (local, memory, S3, HTTP, ...) by a
name in `fsspec.compression.compr` and infers it from a file's extension. Registering tzip
there under the name "tzip" and the extension "tz" is what lets everything built on fsspec —
dask.dataframe.read_csv("*.csv.tz"), pandas through fsspec.open, xarray — read and write .tz
files with no code of its own. The opener is the library's TzipFile, so the bytes written are
those `tzip.open` writes and any .tz file reads back.

fsspec (2026.9) reads no entry-point group for compressions, so
registration happens when this module or `tzip.integrations` is imported; the package also
declares the entry point `fsspec.compression: tzip` for fsspec releases that load that group.
"""

from __future__ import annotations

import warnings
from typing import BinaryIO

import fsspec.compression
import fsspec.utils

from tzip.api import TzipFile

NAME = "tzip"
EXTENSION = "tz"


def open_tzip(infile: BinaryIO, mode: str = "rb", **kwargs) -> TzipFile:
    """fsspec's compression callback: `infile` (an open file of any fsspec file system) read or
    written as a tzip stream. `mode` is "r", "w", "a" or "x" (fsspec passes its first letter);
    kwargs are TzipFile's (modality=, model=, segment_size=, workers=, ...)."""
    return TzipFile(infile, mode[0] + "b", **kwargs)


def register(force: bool = False) -> bool:
    """Register tzip with fsspec (name "tzip", extension "tz"); True if it is registered now.

    Idempotent. Where another package already holds the name or the extension it warns and
    leaves theirs in place unless `force`."""
    compr, owner = fsspec.compression.compr, fsspec.utils.compressions.get(EXTENSION)
    if compr.get(NAME) is open_tzip and owner == NAME and not force:
        return True
    try:
        fsspec.compression.register_compression(NAME, open_tzip, EXTENSION, force=force)
    except ValueError as e:
        warnings.warn(f"tzip is not registered with fsspec: {e}", stacklevel=2)
        return False
    return True


register()
