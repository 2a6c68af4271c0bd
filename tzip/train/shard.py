"""Training shard: one compact file of modelling-order payloads with their layouts.

Layout: b"TZSHARD1" or b"TZSHARD2", u32 header length, JSON header {"docs": [...]}, then the
payload bytes. Each doc records its layout (modality, feature offsets, phase period), where its
bytes start, their length, and whether it is held out for validation. Version 2 adds, after the
payload (at `hints.offset` within the data, 8-aligned), the stages' hints for every byte
(docs/DESIGN.md §8): int16 little-endian [payload bytes, hints.slots], so a doc's hints are rows
start..start+length, computed with the stage cold at the doc's start (as at a coded segment's), on
what the model sees (16-bit audio as the residual of audio predictor `hints.predictor`).
Written by corpora/pack.py, streamed by tzip/train/train.py (memory-mapped, so a 50 MiB shard
costs no RAM to open). Version 1 shards (no hints) still load.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tzip.format.layout import Layout

MAGIC = b"TZSHARD1"  # payload only
MAGIC_HINTS = b"TZSHARD2"  # payload, then the hints of every byte
HINT_DTYPE = np.dtype("<i2")


@dataclass
class Doc:
    name: str
    layout: Layout
    start: int
    length: int
    val: bool = False


def write_shard(path: Path, docs: list[tuple[str, Layout, bytes, bool]], hints: list[np.ndarray] | None = None,
                predictor: int = 0) -> dict:
    """Write docs (name, layout, payload, val); with `hints` (one [len(payload), slots] array per
    doc, computed for audio predictor `predictor`) a version 2 shard."""
    index, offset = [], 0
    for name, lay, data, val in docs:
        index.append({"name": name, "modality": lay.modality, "offsets": list(lay.offsets),
                      "period": lay.period, "start": offset, "length": len(data), "val": val})
        offset += len(data)
    head: dict = {"docs": index}
    if hints is not None:
        if len(hints) != len(docs) or any(h.shape[0] != len(d[2]) for h, d in zip(hints, docs)):
            raise ValueError("hints must give one row per payload byte of every doc")
        slots = hints[0].shape[1] if hints else 0
        head["hints"] = {"slots": slots, "predictor": predictor, "offset": offset + -offset % 8}
    header = json.dumps(head, sort_keys=True).encode()
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write((MAGIC if hints is None else MAGIC_HINTS) + struct.pack("<I", len(header)) + header)
        for _, _, data, _ in docs:
            f.write(data)
        if hints is not None:
            f.write(bytes(-offset % 8))
            for h in hints:
                f.write(np.ascontiguousarray(h, dtype=HINT_DTYPE).tobytes())
    tmp.replace(path)
    return {"docs": len(index), "bytes": offset, "hints": hints is not None}


class Shard:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:8] not in (MAGIC, MAGIC_HINTS):
                raise ValueError(f"{path} is not a tzip training shard")
            (hlen,) = struct.unpack("<I", head[8:12])
            header = json.loads(f.read(hlen))
        self.docs = [
            Doc(d["name"], Layout(d["modality"], tuple(d["offsets"]), d["period"]), d["start"],
                d["length"], d["val"])
            for d in header["docs"]
        ]
        total = sum(d.length for d in self.docs)

        def mapped(dtype, at: int, shape: tuple[int, ...]) -> np.ndarray:  # np.memmap refuses zero bytes
            return np.memmap(path, dtype=dtype, mode="r", offset=12 + hlen + at, shape=shape) if total else \
                np.zeros(shape, dtype)

        self.blob = mapped(np.uint8, 0, (total,))
        self.hints: np.ndarray | None = None  # int16 [payload bytes, slots], where the shard has them
        self.hint_predictor = 0
        if "hints" in header:
            h = header["hints"]
            self.hints = mapped(HINT_DTYPE, h["offset"], (total, h["slots"]))
            self.hint_predictor = h["predictor"]

    def bytes_of(self, doc: Doc, start: int = 0, end: int | None = None) -> np.ndarray:
        end = doc.length if end is None else end
        return self.blob[doc.start + start : doc.start + end]

    def hints_of(self, doc: Doc, start: int = 0, end: int | None = None) -> np.ndarray:
        """The stages' hints [end - start, slots] for positions start..end of a doc."""
        if self.hints is None:
            raise ValueError(f"{self.path} has no hints: python -m corpora.pack --add-hints {self.path}")
        end = doc.length if end is None else end
        return self.hints[doc.start + start : doc.start + end]
