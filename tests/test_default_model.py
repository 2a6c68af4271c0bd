"""The shipped default model loads, passes its bound checks and round-trips real data; every
shipped model is found by its name (tests/test_golden.py pins their streams)."""

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


def test_shipped_models_are_found_by_name_with_or_without_suffix():
    from tzip.engine.modelfile import load

    for path in sorted(MODELS_DIR.glob("*.tzm")):
        model_id = load(path).model_id
        assert get_model(path.name).model_id == model_id
        assert get_model(path.stem).model_id == model_id
