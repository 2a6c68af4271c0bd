"""The layout's rules as tensors: feature bytes, phases and memory visibility for PyTorch code.

Shared by the float training model and the PyTorch reference engine, so both follow exactly the
same rules as the C engine (docs/DESIGN.md §3).
"""

from __future__ import annotations

import torch

from tzip.format.layout import ABSENT, N_FEATURES, PHASES, Layout


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
