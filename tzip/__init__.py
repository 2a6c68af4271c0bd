"""tzip: lossless neural compression with an integer-exact Transformer.

The API follows CPython's lzma module: compress/decompress for bytes, TzipCompressor and
TzipDecompressor for incremental use, open/TzipFile for files.
"""

from .api import (
    DEFAULT_SEGMENT,
    TzipCompressor,
    TzipDecompressor,
    TzipFile,
    compress,
    decompress,
    open,
)
from .errors import TzipError

__all__ = [
    "DEFAULT_SEGMENT", "TzipCompressor", "TzipDecompressor", "TzipError", "TzipFile",
    "compress", "decompress", "open",
]
__version__ = "0.1.0"
