"""What each position may see: the modality, the feature bytes and the phase of a segment.

Shared by the container, the stages, the engines and training so all follow exactly the same
rules (docs/DESIGN.md §3). Position t predicts byte x[t]; every feature is a byte x[t - offset]
with offset >= 1, so it is always already decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Modality(IntEnum):
    """What a stream's payload is; the number is the container's modality byte."""

    TEXT = 0
    IMAGE = 1
    AUDIO = 2
    BINARY = 3

    @classmethod
    def named(cls, name: str) -> Modality:
        """The modality called `name` (text, image, audio, binary)."""
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"modality must be one of {', '.join(MODALITY_NAMES.values())}") from None


TEXT, IMAGE, AUDIO, BINARY = Modality
MODALITY_NAMES = {m: m.name.lower() for m in Modality}
N_FEATURES = 4  # feature slots per position; slot 0 is always the previous byte
ABSENT = 256  # embedding index for "no byte here" (before the segment start, unused slot)
PHASES = 16  # phase embeddings per modality
N_HINTS = 2  # hint slots per position: a stage's predicted byte and its confidence (docs/DESIGN.md §8)


@dataclass(frozen=True)
class Layout:
    """How a segment's bytes are arranged: which earlier bytes are features, and the phase."""

    modality: int = TEXT
    offsets: tuple[int, ...] = (1, 0, 0, 0)  # 0 = unused slot
    period: int = 1  # phase = t mod period (byte within pixel / sample frame)

    @staticmethod
    def text() -> Layout:
        return Layout(TEXT)

    @staticmethod
    def binary() -> Layout:
        return Layout(BINARY)

    @staticmethod
    def image(channels: int, row_bytes: int) -> Layout:
        """Same-channel bytes one row up, up-left and up-right."""
        up, up_left, up_right = row_bytes, row_bytes + channels, row_bytes - channels
        offsets = (1, up, up_left, up_right if up_right >= 1 else 0)
        return Layout(IMAGE, offsets, max(1, min(channels, PHASES)))

    @staticmethod
    def audio(channels: int, sample_bytes: int) -> Layout:
        """Previous samples of the same channel (samples stored most-significant byte first)."""
        frame = channels * sample_bytes
        if sample_bytes == 2:
            offsets = (1, frame, 2 * frame, frame - 1 if frame > 1 else 0)
        else:
            offsets = (1, frame, 2 * frame, 3 * frame)
        return Layout(AUDIO, offsets, max(1, min(frame, PHASES)))
