"""A model's shape: what the model file records and every engine (and training) builds from."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tzip.engine.constants import SCORE_FRAC, U_MAX
from tzip.format.layout import N_HINTS


@dataclass
class ModelConfig:
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    n_kv_heads: int = 0  # key/value heads shared by groups of query heads (0 = n_heads; 1 = multi-query)
    d_ff: int = 384
    window: int = 128  # W: causal sliding window
    block: int = 16  # c: positions per compressive-memory slot
    mem_slots: int = 32  # M: memory slots a query can see
    use_memory: bool = True
    use_features: bool = True  # image/audio neighbour-byte features (slots 1..3)
    audio_predictor: int = 0  # 16-bit audio: order of the fixed predictor subtracted first (0 none, 1, 2)
    hint_slots: int = 0  # the stages' predictions as extra input embeddings (0 none, or N_HINTS; §8)

    def __post_init__(self):
        if self.n_kv_heads == 0:
            self.n_kv_heads = self.n_heads
        if self.n_heads % self.n_kv_heads or self.d_model % self.n_heads:
            raise ValueError("n_heads must divide d_model and be a multiple of n_kv_heads")
        if self.audio_predictor not in (0, 1, 2):
            raise ValueError("audio_predictor must be 0, 1 or 2")
        if self.hint_slots not in (0, N_HINTS):
            raise ValueError(f"hint_slots must be 0 or {N_HINTS}")

    @property
    def kv_dim(self) -> int:
        """Width of the key (and of the value) projection."""
        return self.n_kv_heads * (self.d_model // self.n_heads)

    def to_dict(self) -> dict:
        """The fields as the model file records them; hint_slots only where used, so a model
        without hints exports the same bytes (and id) as before the field existed."""
        out = asdict(self)
        if not self.hint_slots:
            del out["hint_slots"]
        return out


def ring_slots(cfg: ModelConfig) -> int:
    """Memory ring size: room for every visible slot plus the ones filling, a multiple of W/c."""
    per_window = max(1, cfg.window // cfg.block)
    need = cfg.mem_slots + per_window + 2
    return -(-need // per_window) * per_window


def exp_full(exp_table: np.ndarray) -> np.ndarray:
    """The model's exp2 table (256 entries) extended over the whole clamped range U_MAX, so every
    engine looks a softmax weight up in one step: entry u is table[u & 255] >> (u >> SCORE_FRAC)."""
    u = np.arange(U_MAX + 1)
    return (np.asarray(exp_table).astype(np.int64)[u & 255] >> (u >> SCORE_FRAC)).astype(np.int32)
