"""The shipped default model loads, passes its bound checks and round-trips real data."""

from __future__ import annotations

import tzip
from tzip.engine.registry import DEFAULT_MODEL, MODELS_DIR, get_model


def test_default_model_round_trip(samples):
    model = get_model()
    assert (MODELS_DIR / DEFAULT_MODEL).exists()
    data = samples["text"][:400]
    packed = tzip.compress(data, methods=("neural",))
    assert tzip.decompress(packed) == data
    assert packed[6:14] == bytes.fromhex(model.model_id)
