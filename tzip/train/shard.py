"""Training shard: one compact file of modelling-order payloads with their layouts.

Layout: b"TZSHARD1", u32 header length, JSON header {"docs": [...]}, then the payload bytes.
Each doc records its layout (modality, feature offsets, phase period), where its bytes start,
their length, and whether it is held out for validation. Written by corpora/pack.py, streamed
by tzip/train/train.py (memory-mapped, so a 50 MiB shard costs no RAM to open).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tzip.format.layout import Layout

MAGIC = b"TZSHARD1"


@dataclass
class Doc:
    name: str
    layout: Layout
    start: int
    length: int
    val: bool = False


def write_shard(path: Path, docs: list[tuple[str, Layout, bytes, bool]]) -> dict:
    index, offset = [], 0
    for name, lay, data, val in docs:
        index.append({"name": name, "modality": lay.modality, "offsets": list(lay.offsets),
                      "period": lay.period, "start": offset, "length": len(data), "val": val})
        offset += len(data)
    header = json.dumps({"docs": index}, sort_keys=True).encode()
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<I", len(header)) + header)
        for _, _, data, _ in docs:
            f.write(data)
    tmp.replace(path)
    return {"docs": len(index), "bytes": offset}


class Shard:
    def __init__(self, path: str | Path):
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:8] != MAGIC:
                raise ValueError(f"{path} is not a tzip training shard")
            (hlen,) = struct.unpack("<I", head[8:12])
            header = json.loads(f.read(hlen))
        self.blob = np.memmap(path, dtype=np.uint8, mode="r", offset=12 + hlen)
        self.docs = [
            Doc(d["name"], Layout(d["modality"], tuple(d["offsets"]), d["period"]), d["start"],
                d["length"], d["val"])
            for d in header["docs"]
        ]

    def bytes_of(self, doc: Doc, start: int = 0, end: int | None = None) -> np.ndarray:
        end = doc.length if end is None else end
        return self.blob[doc.start + start : doc.start + end]
