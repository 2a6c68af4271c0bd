"""tzip on a Dask cluster: the same files by the local command and by `tzip --scheduler` on a
LocalCluster of 1 and of 2 worker processes; throughput, whether every output is identical, and
what the cluster itself costs (docs/CLUSTER.md).

    python -m bench.cluster [--sets image,audio,text] [--limit BYTES] [--workers 1,2] [--out FILE]

Per set, the smallest bench files up to --limit bytes (as bench.run --limit picks them). Every run
compresses all the files in one command, then decompresses them in one command; cluster start-up
is timed apart and not counted in the throughput. The local command uses a worker process per
core (-T 0); each cluster worker is a process with one thread. Outputs are compared byte for byte
with the local command's, decompressed files with the originals.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distributed import Client, LocalCluster

from tzip.engine.registry import get_model
from tzip.format import container as C
from tzip.integrations import dask as tzdask

SETS = {"text": "text-bench", "image": "image-bench", "audio": "audio-bench", "binary": "binary-bench"}
SUFFIXES = {"image": (".ppm", ".pgm")}
CACHE = Path(os.environ.get("TZIP_CACHE", Path.home() / ".cache" / "tzip"))


def pick(modality: str, limit: int) -> list[Path]:
    """The smallest files of a bench set up to `limit` bytes."""
    d = CACHE / "sets" / SETS[modality]
    if not (d / "manifest.json").exists():
        raise SystemExit(f"{d} is not built: python -m corpora.build {SETS[modality]}")
    names = [n for n in json.loads((d / "manifest.json").read_text())["files"]
             if n.endswith(SUFFIXES.get(modality, ""))]
    out, total = [], 0
    for n in sorted(names, key=lambda n: ((d / n).stat().st_size, n)):
        size = (d / n).stat().st_size
        if total + size <= limit or not out:
            out.append(d / n)
            total += size
    return out


def tz(*args) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tzip.cli", *map(str, args)], check=True, capture_output=True)
    return time.perf_counter() - t0


def run(work: Path, files: list[Path], extra: list[str]) -> tuple[float, float, dict[str, bytes], bool]:
    """(compress s, decompress s, outputs, every file restored) of one command each in `work`."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    names = [work / f.name for f in files]
    for f, n in zip(files, names):
        shutil.copyfile(f, n)
    t_c = tz("-f", "-q", *extra, *names)
    outputs = {n.name: Path(f"{n}.tz").read_bytes() for n in names}
    for n in names:
        n.unlink()
    t_d = tz("-d", "-f", "-q", *extra, *[f"{n}.tz" for n in names])
    restored = all(n.read_bytes() == f.read_bytes() for f, n in zip(files, names))
    return t_c, t_d, outputs, restored


def tasks(outputs: dict[str, bytes]) -> tuple[int, int]:
    """(compression tasks, files that are one task): a stream that chains is one task, any other
    one per segment (an lzma frame holds a block of them)."""
    n, whole = 0, 0
    for blob in outputs.values():
        for header, frames in C.streams(blob):
            if header.chained:
                n, whole = n + 1, whole + 1
            else:
                n += sum(-(-f.raw_len // header.segment_size) for f in frames if f.kind == C.FRAME_SEGMENT)
    return n, whole


def overheads(client: Client) -> dict[str, float]:
    """What the cluster costs apart from the coding: a task's round trip through the scheduler,
    sending the model to every worker, a worker parsing it."""
    trips = []
    for i in range(30):
        t0 = time.perf_counter()
        client.submit(int, i, pure=False).result()
        trips.append(time.perf_counter() - t0)
    model = get_model(None)
    blob = model.file.to_bytes()
    t0 = time.perf_counter()
    ref = client.scatter(blob, broadcast=True, hash=False)
    scatter = time.perf_counter() - t0

    def parse_time(blob: bytes) -> float:
        from tzip.engine.modelfile import parse
        from tzip.engine.registry import from_file

        t = time.perf_counter()
        from_file(parse(blob))
        return time.perf_counter() - t

    parse = max(client.run(parse_time, blob).values())
    del ref
    return {"task_ms": 1000 * statistics.median(trips), "scatter_ms": 1000 * scatter, "parse_ms": 1000 * parse,
            "model_bytes": len(blob)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="image,audio,text")
    ap.add_argument("--limit", type=int, default=600_000, help="bytes per set")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--out", type=Path, help="also write the table here")
    args = ap.parse_args(argv)
    files = [f for s in args.sets.split(",") for f in pick(s, args.limit)]
    total = sum(f.stat().st_size for f in files)
    lines = [f"{len(files)} files, {total:,} bytes ({args.sets}); {os.cpu_count()} CPUs, "
             f"load average {os.getloadavg()[0]:.1f} at the start", ""]
    rows = ["| run | start s | compress s | compress kB/s | decompress s | decompress kB/s | identical | restored |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    with tempfile.TemporaryDirectory() as d:
        t_c, t_d, local, ok = run(Path(d) / "local", files, [])
        rows.append(f"| local command, -T 0 | - | {t_c:.1f} | {total / t_c / 1e3:.1f} | {t_d:.1f} | "
                    f"{total / t_d / 1e3:.1f} | (reference) | {'yes' if ok else 'NO'} |")
        n_tasks, whole = tasks(local)
        costs = None
        for n in map(int, args.workers.split(",")):
            t0 = time.perf_counter()
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                              silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
                start = time.perf_counter() - t0
                t_c, t_d, out, ok = run(Path(d) / f"w{n}", files, ["--scheduler", cluster.scheduler_address])
                loads = client.run(tzdask.worker_model_loads)
                costs = costs or overheads(client)
            same = all(out[k] == local[k] for k in local)
            rows.append(f"| --scheduler, {n} worker{'s' * (n > 1)} | {start:.1f} | {t_c:.1f} | "
                        f"{total / t_c / 1e3:.1f} | {t_d:.1f} | {total / t_d / 1e3:.1f} | "
                        f"{'yes' if same else 'NO'} | {'yes' if ok else 'NO'} |")
            lines.append(f"model loads per worker, {n} worker(s): {sorted(loads.values(), key=str)}")
    lines += ["", *rows, "",
              f"{n_tasks} compression tasks ({whole} files whole, as their streams chain); "
              f"a task's round trip through the scheduler {costs['task_ms']:.1f} ms (median); "
              f"sending the {costs['model_bytes']:,}-byte model to every worker {costs['scatter_ms']:.0f} ms; "
              f"a worker parsing it {costs['parse_ms']:.0f} ms; load average {os.getloadavg()[0]:.1f} at the end"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
