"""The engine compression and decompression run on a CPU: the C library, no torch.

A CpuModel keeps the model file's numpy tensors in the layout engine.c reads (native.NativeWeights)
and calls the library for each segment's pass and each decode step. It computes the integers
of the PyTorch reference (reference.IntModel), which needs torch and is used where the library
is unavailable, for tests, and as the base of the GPU backend.
"""

from __future__ import annotations

import numpy as np

from tzip.engine import native
from tzip.engine.base import Model
from tzip.engine.modelfile import IntModelFile
from tzip.format.layout import Layout


class UnsupportedShape(ValueError):
    """A model shape engine.c does not cover (native.supports): the reference engine runs it."""


class CpuModel(Model):
    def __init__(self, mf: IntModelFile):
        super().__init__(mf)
        if not native.supports(self):
            raise UnsupportedShape("the C engine does not cover this model's shape")
        self._native = native.NativeWeights(self)

    def decoder(self, layouts: list[Layout], max_len: int) -> native.NativeDecoder:
        return native.NativeDecoder(self, layouts, max_len)

    def segment_frequencies(self, symbols: np.ndarray, layout: Layout,
                            rows: tuple[int, int] | None = None, hints: np.ndarray | None = None) -> np.ndarray:
        return native.parallel(self, symbols, layout, rows=rows, hints=hints)
