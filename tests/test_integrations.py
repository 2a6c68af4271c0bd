"""tzip beyond one machine: fsspec, numcodecs/Zarr (with Dask arrays) and a Dask distributed cluster.

The cluster tests run a LocalCluster of two worker processes and check that `tzip --scheduler`
writes the bytes the local command writes, for compression and decompression.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import subprocess
import sys
import tarfile
from importlib.metadata import entry_points
from pathlib import Path

import dask
import dask.array as da
import dask.dataframe as dd
import fsspec
import numcodecs
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import zarr
from distributed import Client, LocalCluster
from PIL import Image

import tzip
import tzip.integrations
from tzip.format import container as C
from tzip.format.layout import AUDIO, BINARY, IMAGE, TEXT
from tzip.integrations import dask as tzdask
from tzip.integrations.fsspec import open_tzip
from tzip.integrations.numcodecs import Tzip, as_file
from tzip.integrations.zarr import TzipCodec

DATA = Path(__file__).parent / "data"
TZIP = [sys.executable, "-m", "tzip.cli"]
CSV = b"city,year,people\nOslo,2020,693494\nBergen,2020,285911\nTrondheim,2020,205163\n"


def modality_of(blob: bytes) -> int:
    return C.Header.unpack(blob[: C.HEADER_SIZE]).layout.modality


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.asarray(Image.open(DATA / "astronaut_crop.png").convert("RGB"))  # 48 x 48 x 3


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return sf.read(DATA / "speech.wav", dtype="int16")[0]  # 6000 mono samples


# -- fsspec --------------------------------------------------------------------------------------


def test_tzip_is_an_fsspec_compression_inferred_from_tz_and_declared_as_an_entry_point():
    assert fsspec.compression.compr["tzip"] is open_tzip
    assert fsspec.utils.infer_compression("data.csv.tz") == "tzip"
    (ep,) = [e for e in entry_points(group="fsspec.compression") if e.name == "tzip"]
    assert ep.load() is open_tzip


@pytest.mark.parametrize("root", ["local", "memory"])
def test_fsspec_writes_and_reads_tzip_streams(tmp_path, root):
    base = str(tmp_path) if root == "local" else f"memory://{tmp_path.name}"
    text = (DATA / "alice_head.txt").read_text()[:3000]
    with fsspec.open(f"{base}/a.txt.tz", "wt", compression="infer") as f:
        f.write(text)
    with fsspec.open(f"{base}/b.bin", "wb", compression="tzip") as f:  # named, whatever the extension
        f.write(text.encode()[:1000])
    fs, path = fsspec.core.url_to_fs(base)
    raw = fs.cat_file(f"{path}/a.txt.tz")
    assert raw[:4] == C.MAGIC and tzip.decompress(raw) == text.encode()  # a real .tz stream
    with fsspec.open(f"{base}/a.txt.tz", "rt", compression="infer") as f:
        assert f.read() == text
    with fsspec.open(f"{base}/b.bin", "rb", compression="tzip") as f:
        assert f.read() == text.encode()[:1000]
    fs.pipe_file(f"{path}/c.txt.tz", tzip.compress(b"made by tzip.compress\n"))  # and what tzip wrote reads
    with fsspec.open(f"{base}/c.txt.tz", "rb", compression="infer") as f:
        assert f.read() == b"made by tzip.compress\n"


def test_pandas_and_dask_dataframes_read_csv_tz(tmp_path):
    for i in range(2):
        (tmp_path / f"part{i}.csv.tz").write_bytes(tzip.compress(CSV))
    with fsspec.open(str(tmp_path / "part0.csv.tz"), "rb", compression="infer") as f:
        frame = pd.read_csv(f)
    assert list(frame.city) == ["Oslo", "Bergen", "Trondheim"] and frame.people.sum() == 1184568
    df = dd.read_csv(str(tmp_path / "*.csv.tz"), blocksize=None).compute(scheduler="threads")
    assert len(df) == 6 and df.people.sum() == 2 * 1184568
    with fsspec.open(f"memory://{tmp_path.name}/out.csv.tz", "wt", compression="infer") as f:
        frame.to_csv(f, index=False)  # pandas writes through it too
    with fsspec.open(f"memory://{tmp_path.name}/out.csv.tz", "rb") as f:
        assert tzip.decompress(f.read()) == CSV


# -- numcodecs and Zarr --------------------------------------------------------------------------


def arrays(image: np.ndarray, speech: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
    """Arrays of every kind the codec distinguishes, with the modality tzip should code them as."""
    rng = np.random.default_rng(0)
    return {
        "rgb": (image[:32].copy(), IMAGE),  # 32 x 48 x 3
        "grey": (np.ascontiguousarray(image[:32, :, 1]), IMAGE),
        "rgba": (np.concatenate([image[:16], image[:16, :, :1]], axis=2), IMAGE),
        "grey stack": (np.stack([image[:8, :, 0], image[8:16, :, 1]]), IMAGE),  # 2 x 8 x 48
        "mono": (speech[:2000].copy(), AUDIO),
        "stereo": (speech[:2000].reshape(1000, 2).copy(), AUDIO),
        "big-endian int16": (speech[:500].astype(">i2"), BINARY),
        "float32": (rng.standard_normal(500).astype(np.float32), BINARY),
        "int64": (np.arange(300, dtype=np.int64) ** 2, BINARY),
        "fortran uint8": (np.asfortranarray(image[:16, :16, 0]), TEXT),  # memory order is not rows: bytes
        "text bytes": (np.frombuffer(CSV * 4, dtype=np.uint8), TEXT),
        "empty": (np.zeros((0, 3), dtype=np.uint8), TEXT),
    }


def test_the_codec_round_trips_every_dtype_as_the_modality_it_picks(image, speech):
    codec = numcodecs.get_codec({"id": "tzip"})
    assert isinstance(codec, Tzip)
    for name, (arr, modality) in arrays(image, speech).items():
        blob = codec.encode(arr)
        assert modality_of(blob) == modality, name
        back = np.frombuffer(codec.decode(blob), dtype=arr.dtype)
        assert back.tobytes() == arr.tobytes(order="A"), name
        out = np.empty_like(arr)
        assert codec.decode(blob, out=out) is not None and np.array_equal(out, arr), name
    assert codec.decode(codec.encode(b"plain bytes, not an array")) == b"plain bytes, not an array"


def test_wrapping_pixels_and_samples_in_their_file_header_beats_coding_them_as_bytes(image, speech):
    for arr in (image[:32].copy(), speech[:2000].copy()):
        assert len(Tzip().encode(arr)) < 0.9 * len(Tzip("binary").encode(arr))
    blob = Tzip().encode(image[:32].copy())
    ppm = tzip.decompress(blob)  # every chunk is a complete .tz of the file tzip saw
    assert ppm.startswith(b"P6\n48 32\n255\n") and ppm.endswith(image[:32].tobytes())
    assert as_file(speech[:10].copy())[0][:4] == b"RIFF"


def test_codec_config_and_arguments():
    codec = Tzip("image", segment_size=4096)
    assert numcodecs.get_codec(codec.get_config()) == codec
    assert modality_of(Tzip("image").encode(np.arange(100, dtype=np.uint8))) == BINARY  # no shape: bytes
    assert modality_of(Tzip("text").encode(np.zeros((8, 8), dtype=np.uint8))) == TEXT
    with pytest.raises(ValueError, match="modality"):
        Tzip("video")
    with pytest.raises(ValueError, match="segment_size"):
        Tzip(segment_size=10)
    with pytest.raises(tzip.TzipError, match="not a tzip stream"):
        Tzip().decode(b"not tzip at all, no")


def chunk_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith((".z", "zarr.json"))]


def test_zarr_v2_and_v3_arrays_store_chunks_as_tzip_images_and_audio(tmp_path, image, speech):
    v2 = zarr.create_array(str(tmp_path / "v2.zarr"), shape=(48, 48, 3), chunks=(24, 48, 3), dtype="uint8",
                           zarr_format=2, compressors=Tzip())
    v2[:] = image
    v3 = zarr.create_array(str(tmp_path / "v3.zarr"), shape=(4000,), chunks=(2000,), dtype="int16",
                           serializer=TzipCodec(), compressors=None)
    v3[:] = speech[:4000]
    assert np.array_equal(zarr.open_array(str(tmp_path / "v2.zarr"), mode="r")[:], image)
    assert np.array_equal(zarr.open_array(str(tmp_path / "v3.zarr"), mode="r")[:], speech[:4000])
    assert {modality_of(p.read_bytes()) for p in chunk_files(tmp_path / "v2.zarr")} == {IMAGE}
    assert {modality_of(p.read_bytes()) for p in chunk_files(tmp_path / "v3.zarr")} == {AUDIO}
    assert len(chunk_files(tmp_path / "v2.zarr")) == 2 and len(chunk_files(tmp_path / "v3.zarr")) == 2
    # a fresh process finds both codecs through their entry points, without importing tzip
    code = ("import hashlib, zarr, sys; a = zarr.open_array(sys.argv[1])[:]; b = zarr.open_array(sys.argv[2])[:]; "
            "print(hashlib.sha256(a.tobytes() + b.tobytes()).hexdigest(), "
            "sorted(m for m in sys.modules if m.startswith('tzip.integrations')))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "v2.zarr"), str(tmp_path / "v3.zarr")],
                         capture_output=True, text=True, check=True, timeout=120).stdout.split(" ", 1)
    assert out[0] == hashlib.sha256(image.tobytes() + speech[:4000].tobytes()).hexdigest()
    assert "tzip.integrations.numcodecs" in out[1] and "tzip.integrations.zarr" in out[1]


def test_dask_arrays_to_zarr_with_the_codec(tmp_path, image, speech):
    stack = np.stack([image, image[::-1]])  # 2 x 48 x 48 x 3, a chunk per image
    with dask.config.set(scheduler="threads"):
        da.from_array(stack, chunks=(1, 48, 48, 3)).to_zarr(str(tmp_path / "images.zarr"), serializer=TzipCodec(),
                                                             compressors=None)
        da.from_array(speech[:4000], chunks=2000).to_zarr(str(tmp_path / "speech.zarr"), zarr_format=2,
                                                          compressors=Tzip())
        assert np.array_equal(da.from_zarr(str(tmp_path / "images.zarr")).compute(), stack)
        assert np.array_equal(da.from_zarr(str(tmp_path / "speech.zarr")).compute(), speech[:4000])
    assert {modality_of(p.read_bytes()) for p in chunk_files(tmp_path / "images.zarr")} == {IMAGE}
    assert {modality_of(p.read_bytes()) for p in chunk_files(tmp_path / "speech.zarr")} == {AUDIO}


def test_neither_tzip_nor_its_command_imports_the_integrations_dependencies():
    code = ("import sys, tzip, tzip.api, tzip.cli; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'dask', 'distributed', 'fsspec', 'numcodecs', 'pandas', 'zarr'}), "
            "[m for m in sys.modules if m.startswith('tzip.integrations')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []"


# -- a Dask distributed cluster ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster):
    with Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture
def env(tiny_path):
    """The tiny model on the client only: workers use the model the client sends them."""
    return {**os.environ, "TZIP_MODEL": str(tiny_path), "PYTHONPATH": os.getcwd()}


def tz(env, *args, check=True):
    r = subprocess.run([*TZIP, *map(str, args)], capture_output=True, env=env, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}: {r.stderr.decode()}")
    return r


def source_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for path in sorted((Path(__file__).resolve().parents[1] / "tzip" / "format").glob("*.py")):
            t.add(path, arcname=path.name)
        t.add(Path(__file__), arcname="test.py")  # ten members or more: enough to gather
    return buf.getvalue()


def inputs(tmp_path: Path, samples: dict[str, bytes]) -> dict[str, bytes]:
    """Text (chains: one task), audio and an image (segments spread over the workers), binary, and a
    tar (read whole and coded with its headers gathered, as the command does)."""
    files = {"notes.txt": samples["text"], "speech.wav": samples["wav_mono"], "photo.ppm": samples["ppm"],
             "table.bin": np.arange(6000, dtype="<u4").tobytes() + samples["random"], "src.tar": source_tar()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return files


def test_the_command_on_a_cluster_writes_the_local_bytes(env, tmp_path, samples, client, tiny):
    files = inputs(tmp_path, samples)
    names = [tmp_path / n for n in files]
    tz(env, "--segment-size", "2048", *names)  # the local run
    local = {n: (tmp_path / f"{n}.tz").read_bytes() for n in files}
    for n in files:
        (tmp_path / f"{n}.tz").unlink()
    address = client.scheduler.address
    tz(env, "--scheduler", address, "--segment-size", "2048", "--rm", *names)
    for n in files:
        assert (tmp_path / f"{n}.tz").read_bytes() == local[n], n
        assert not (tmp_path / n).exists()  # --rm: removed once verified on the cluster
    assert sum(1 for f in C.streams(local["photo.ppm"])[0][1] if f.kind == C.FRAME_SEGMENT) > 2
    assert C.streams(local["src.tar"])[0][0].transcode == "tar"

    bad = tmp_path / "bad.bin.tz"
    bad.write_bytes(local["table.bin"][:-20])  # truncated
    r = tz(env, "-d", "--scheduler", address, *[tmp_path / f"{n}.tz" for n in files], bad, check=False)
    assert r.returncode == 1 and b"bad.bin.tz: truncated tzip stream" in r.stderr and b"Traceback" not in r.stderr
    for n, data in files.items():
        assert (tmp_path / n).read_bytes() == data, n
    assert not (tmp_path / "bad.bin").exists() and not list(tmp_path.glob(".tzip-*"))

    r = tz(env, "--scheduler", address, "-c", "--segment-size", "2048", *names)
    assert r.stdout == b"".join(local.values())  # standard output takes the files in order

    loads = client.run(tzdask.worker_model_loads)
    assert len(loads) == 2 and all(w.get(tiny.model_id) == 1 for w in loads.values()), loads  # once each


def test_the_library_on_a_cluster(tmp_path, samples, client, tiny_path):
    files = inputs(tmp_path, samples)
    names = [str(tmp_path / n) for n in ("photo.ppm", "table.bin")]
    errors = []
    results = tzdask.compress_files([*names, str(tmp_path / "missing")], client, model=tiny_path, segment_size=4096,
                                    on_error=lambda name, e: errors.append((name, str(e))))
    assert [r.error is None for r in results] == [True, True, False] and "cannot read" in errors[0][1], errors
    for n in ("photo.ppm", "table.bin"):
        want = tzip.compress(files[n], segment_size=4096, model=tiny_path)
        assert (tmp_path / f"{n}.tz").read_bytes() == want
    with pytest.raises(tzip.TzipError, match="already exists"):  # without on_error the failure is raised
        tzdask.compress_files(names, client, model=tiny_path)
    out = tzdask.decompress_files([n + ".tz" for n in names], client, targets=[n + ".back" for n in names],
                                  model=tiny_path)
    assert [r.written for r in out] == [len(files["photo.ppm"]), len(files["table.bin"])]
    for n in names:
        assert Path(n + ".back").read_bytes() == Path(n).read_bytes()
    assert tzdask.verify_files(names, [n + ".tz" for n in names], client, model=tiny_path) == [True, True]


def test_dask_dataframes_read_csv_tz_on_the_cluster(tmp_path, client):
    tzdask.install(client)  # fsspec's registration in every worker
    for i in range(3):
        (tmp_path / f"part{i}.csv.tz").write_bytes(tzip.compress(CSV))
    df = client.compute(dd.read_csv(str(tmp_path / "*.csv.tz"), blocksize=None)).result()
    assert len(df) == 9 and df.people.sum() == 3 * 1184568
    assert all(client.run(lambda: "tzip" in fsspec.compression.compr).values())


def test_the_driver_is_reached_from_the_package():
    assert tzip.integrations.compress_files is tzdask.compress_files
    assert tzip.integrations.decompress_files is tzdask.decompress_files
