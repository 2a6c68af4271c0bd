"""The classical-only baseline (head-zeroed model) and the small-inputs bench, on small real fixtures."""

from __future__ import annotations

import numpy as np

import tzip
from bench import classical, small
from bench.codecs import tzip_classical_codec
from tzip.engine.constants import FREQ_BITS
from tzip.engine.modelfile import load
from tzip.engine.registry import get_model

from .conftest import DATA
from .test_corpora_bench import make_sets


def test_zeroed_head_gives_uniform_frequencies_and_round_trips(tmp_path, monkeypatch, samples):
    path = classical.classical_model(None, tmp_path)
    shipped = get_model()
    mf = load(path)
    assert path.parent == tmp_path / "models" and shipped.model_id in path.name
    assert mf.meta["classical_only_of"] == shipped.model_id and mf.model_id != shipped.model_id
    assert not mf.tensors["head.w"].any() and mf.tensors["head.w"].shape == shipped.file.tensors["head.w"].shape
    for name, t in shipped.file.tensors.items():  # only the head differs
        assert name == "head.w" or np.array_equal(t, mf.tensors[name])
    stamp = path.stat().st_mtime_ns
    assert classical.classical_model(None, tmp_path) == path and path.stat().st_mtime_ns == stamp  # reused
    text = (DATA / "alice_head.txt").read_bytes()
    assert classical.uniformity(path, text[:1500]) == (1 << FREQ_BITS >> 8,) * 2  # every value 256 of 2^16
    monkeypatch.setenv("TZIP_CACHE", str(tmp_path))
    codec = tzip_classical_codec(workers=1)
    for data in (text[:3000], samples["pgm"][:2000]):
        blob = codec.encode(data)
        assert codec.decode(blob) == data and len(blob) < len(data)
    blob = codec.encode(text)
    assert len(blob) != len(tzip.compress(text))  # the network is really gone


def test_pieces_cover_every_file_and_the_subset_is_deterministic(tmp_path):
    sizes = [10, 1, 4096 * 3, 4096 * 40 + 7, 5000, 4096]
    files = []
    for i, n in enumerate(sizes):
        files.append(tmp_path / f"f{i}")
        files[-1].write_bytes(bytes(range(256)) * (n // 256) + bytes(n % 256))
    per_file = small.cut(files)
    for f, ps in zip(files, per_file):  # contiguous, in order, the whole file
        assert [p.offset for p in ps] == list(range(0, f.stat().st_size, small.PIECE))
        assert sum(p.length for p in ps) == f.stat().st_size and all(p.file == f for p in ps)
        assert b"".join(p.read() for p in ps) == f.read_bytes()
    total = sum(map(len, per_file))
    assert small.select(per_file, 0) == small.select(per_file, total + 5) == [p for ps in per_file for p in ps]
    for count in range(len(files), total):
        chosen = small.select(per_file, count)
        assert chosen == small.select(small.cut(files), count)  # deterministic
        assert len(chosen) == count == len(set(chosen))
        assert {p.file for p in chosen} == set(files)  # every file
        order = [(files.index(p.file), p.offset) for p in chosen]
        assert order == sorted(order)
    big = [p for p in small.select(per_file, 20) if p.file == files[3]]
    assert len(big) >= 10 and max(p.offset for p in big) > 30 * 4096  # spread over the file, not its start
    flat = [p for ps in per_file for p in ps]  # fewer pieces than files: every k-th piece of the set
    assert small.select(per_file, 3) == [flat[8], flat[24], flat[40]]


def test_small_bench_codes_every_piece_alone(tmp_path, monkeypatch, samples):
    make_sets(tmp_path, samples)
    monkeypatch.setattr(small, "DICT_SIZE", 1024)
    monkeypatch.setattr(small, "DICT_SAMPLE_BYTES", 48 * 1024)
    monkeypatch.setenv("TZIP_CACHE", str(tmp_path))
    res = small.run(["text", "image"], tmp_path, 2 * 1024, piece=1024, log=lambda *_: None)
    assert res["dictionaries"]["all"]["trained_on"].keys() == {"text-train", "image-train", "audio-train"}
    assert res["dictionaries"]["text"]["trained_on"].keys() == {"text-train"}
    assert res["codecs"][:4] == ["tzip", "tzip classical-only", "tzip network alone", small.REFERENCE]
    image = res["sets"]["image"]
    assert image["pieces"] == 2 and image["files_covered"] == image["files"] == 2
    assert res["all"]["pieces"] == 4 and all(c["ok"] for c in res["all"]["codecs"].values())
    row = res["sets"]["text"]["rows"][0]
    name, offset = row["piece"].rsplit("@", 1)
    piece = (tmp_path / "sets/text-bench" / name).read_bytes()[int(offset) : int(offset) + 1024]
    assert row["tzip"]["bytes"] == len(tzip.compress(piece)) and row["detected"] == "text"
    assert row["tzip network alone"]["bytes"] == len(tzip.compress(piece, methods=("neural",)))
    cache = list((tmp_path / "dicts").glob("*.dict"))
    assert len(cache) == 3  # all training sets, text's own, image's own
    again = small.zstd_dictionary(tmp_path, 1024)  # reused from the cache
    assert again[1] == res["dictionaries"]["all"]
    md = small.markdown(res)
    assert "| tzip classical-only |" in md and "### all: 4 pieces" in md and "text-train" in md
