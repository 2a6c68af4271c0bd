"""The integer model file: one versioned file of integer tensors plus a JSON header.

Layout: b"TZMODEL" + version byte, u32 header length, JSON header (config, tensor index),
then the raw little-endian tensor bytes. The model id is the first 8 bytes of the file's
SHA-256 (16 hex digits): it changes whenever any weight or table changes, and containers
record it so a stream is never decoded with another model.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"TZMODEL"
VERSION = 2  # v2: int32 per-channel requantisation, 15-bit exp table
DTYPES = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64}


class ModelFileError(ValueError):
    pass


@dataclass
class IntModelFile:
    config: dict
    tensors: dict[str, np.ndarray]
    meta: dict
    model_id: str = ""

    def to_bytes(self) -> bytes:
        index, blobs, offset = {}, [], 0
        for name in sorted(self.tensors):
            arr = np.ascontiguousarray(self.tensors[name])
            if arr.dtype.name not in DTYPES:
                raise ModelFileError(f"tensor {name} has non-integer dtype {arr.dtype}")
            raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
            index[name] = [arr.dtype.name, list(arr.shape), offset, len(raw)]
            blobs.append(raw)
            offset += len(raw)
        header = json.dumps(
            {"config": self.config, "meta": self.meta, "tensors": index}, sort_keys=True
        ).encode()
        return MAGIC + bytes([VERSION]) + struct.pack("<I", len(header)) + header + b"".join(blobs)

    def save(self, path: str | Path) -> str:
        data = self.to_bytes()
        Path(path).write_bytes(data)
        self.model_id = model_id_of(data)
        return self.model_id


def model_id_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def parse(data: bytes) -> IntModelFile:
    if data[: len(MAGIC)] != MAGIC:
        raise ModelFileError("not a tzip model file")
    if data[len(MAGIC)] != VERSION:
        raise ModelFileError(f"unsupported model file version {data[len(MAGIC)]}")
    pos = len(MAGIC) + 1
    (hlen,) = struct.unpack_from("<I", data, pos)
    pos += 4
    header = json.loads(data[pos : pos + hlen])
    base = pos + hlen
    tensors = {}
    for name, (dtype, shape, off, n) in header["tensors"].items():
        buf = data[base + off : base + off + n]
        if len(buf) != n:
            raise ModelFileError("model file is truncated")
        tensors[name] = np.frombuffer(buf, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<")).reshape(shape)
    return IntModelFile(header["config"], tensors, header.get("meta", {}), model_id_of(data))


def load(path: str | Path) -> IntModelFile:
    return parse(Path(path).read_bytes())
