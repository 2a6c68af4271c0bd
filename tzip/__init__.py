"""tzip: lossless neural compression with an integer-exact Transformer.

The API follows CPython's lzma module: compress/decompress for bytes, TzipCompressor and
TzipDecompressor for incremental use, open/TzipFile for files. They load on first use, so that
`import tzip.format` (the container alone) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tzip.errors import TzipError

if TYPE_CHECKING:
    from tzip.api import DEFAULT_SEGMENT, TzipCompressor, TzipDecompressor, TzipFile, compress, decompress, open

__all__ = [
    "DEFAULT_SEGMENT", "TzipCompressor", "TzipDecompressor", "TzipError", "TzipFile",
    "compress", "decompress", "open",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in __all__:
        from tzip import api

        return getattr(api, name)
    raise AttributeError(f"module 'tzip' has no attribute {name!r}")
