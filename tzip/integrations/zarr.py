"""tzip as a Zarr v3 codec: `zarr.create_array(..., serializer=TzipCodec())`.

Zarr v2 arrays take the numcodecs codec directly (`compressors=Tzip()`, tzip.integrations.numcodecs)
and hand it each chunk as an array. Zarr v3 passes a compressor ("bytes-to-bytes" codec) only
flat bytes, without the chunk's shape or dtype, so tzip could not tell an image tile from any
bytes; this codec is the array-to-bytes step instead (the place of Zarr's `bytes` codec), sees
the chunk as an array, and codes it with the numcodecs codec. Its metadata name is
"numcodecs.tzip", Zarr's convention for numcodecs codecs, registered through the `zarr.codecs`
entry point so any process reading the array finds it. Chunks are stored little-endian.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import JSON, parse_named_configuration
from zarr.registry import register_codec

from tzip.integrations.numcodecs import Tzip

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

NAME = "numcodecs.tzip"


@dataclass(frozen=True)
class TzipCodec(ArrayBytesCodec):
    """Zarr v3 array-to-bytes codec: each chunk a tzip stream (modality, segment_size: see Tzip)."""

    is_fixed_size = False
    modality: str | None = None
    segment_size: int | None = None

    def __post_init__(self) -> None:
        Tzip(self.modality, self.segment_size)  # the same argument checks

    @property
    def _codec(self) -> Tzip:
        return Tzip(self.modality, self.segment_size)

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, config = parse_named_configuration(data, NAME, require_configuration=False)
        return cls(**(config or {}))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, JSON]:
        config = {k: v for k, v in (("modality", self.modality), ("segment_size", self.segment_size)) if v is not None}
        return {"name": NAME, "configuration": config} if config else {"name": NAME}

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        arr = np.asarray(chunk_array.as_ndarray_like())
        if arr.dtype.itemsize > 1 and arr.dtype.byteorder not in ("<", "|"):
            arr = arr.astype(arr.dtype.newbyteorder("<"))  # stored little-endian on every machine
        return chunk_spec.prototype.buffer.from_bytes(self._codec.encode(np.ascontiguousarray(arr)))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        dtype = chunk_spec.dtype.to_native_dtype()
        stored = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
        raw = self._codec.decode(chunk_bytes.to_bytes())
        arr = np.frombuffer(raw, dtype=stored).astype(dtype, copy=False).reshape(chunk_spec.shape)
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(arr)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError  # variable: is_fixed_size is False


register_codec(NAME, TzipCodec)
