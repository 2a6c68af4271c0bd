"""What each position may see: modality layouts, feature bytes and memory visibility.

Shared by the float training model and the integer engine so both follow exactly the same
rules (DESIGN §3). Position t predicts byte x[t]; every feature is a byte x[t - offset] with
offset >= 1, so it is always already decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TEXT, IMAGE, AUDIO, BINARY = 0, 1, 2, 3
MODALITY_NAMES = {TEXT: "text", IMAGE: "image", AUDIO: "audio", BINARY: "binary"}
N_FEATURES = 4  # feature slots per position; slot 0 is always the previous byte
ABSENT = 256  # embedding index for "no byte here" (before the segment start, unused slot)
PHASES = 16  # phase embeddings per modality


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


def feature_indices(data: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Feature bytes for every position of `data` ([..., T] uint8) -> [..., T, N_FEATURES] long."""
    x = data.long()
    t = x.shape[-1]
    out = torch.full((*x.shape, N_FEATURES), ABSENT, dtype=torch.long)
    for slot, off in enumerate(layout.offsets):
        if off > 0 and off < t + 1:
            out[..., off:, slot] = x[..., : t - off]
    return out


def phase_indices(positions: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Index into the (modality, phase) embedding table."""
    return layout.modality * PHASES + positions % layout.period


def visible_slots(t: torch.Tensor | int, window: int, block: int, slots: int):
    """Memory slots visible to the query at position t, as the half-open range [lo, hi).

    Slot b summarises positions [b*block, (b+1)*block) and becomes visible once that block has
    left t's window [t-window+1, t] entirely; at most `slots` of the newest visible ones are kept.
    """
    if isinstance(t, int):
        hi = max(0, (t - window + 1) // block) if t - window + 1 >= 0 else 0
        return max(0, hi - slots), hi
    start = t - window + 1
    hi = torch.where(start >= 0, torch.div(start, block, rounding_mode="floor"), torch.zeros_like(t))
    return torch.clamp(hi - slots, min=0), hi
