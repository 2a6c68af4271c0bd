"""Segment coding spread over worker processes, one engine thread each, so every core works.

Processes, not threads: the decode loop's Python between C calls holds the GIL, and the
PyTorch reference's many small calls hold it between kernels, so two threads in one process run
little faster than one, while two processes run twice as fast. Workers are plain
`python -c ...workers.main()` subprocesses speaking pickle over their stdin/stdout: nothing is
forked (the parent may hold OpenMP threads) and the caller's main module is never re-imported
(multiprocessing's spawn would). Each loads the model from its bytes once and is kept for later
batches and files. Results never depend on the worker count: segments are independent and the
engine is exact.
"""

from __future__ import annotations

import atexit
import os
import pickle
import struct
import subprocess
import sys
from typing import BinaryIO

from tzip.codec.decoder import decode_segments
from tzip.codec.encoder import encode_segments
from tzip.codec.rangecoder import CoderError
from tzip.engine.base import Model
from tzip.errors import TzipError
from tzip.format.layout import Layout

POOL_MIN_BYTES = 128 * 1024  # smaller batches run in-process unless workers already run: starting them costs ~2 s
_workers: dict[tuple[str, int], list[subprocess.Popen]] = {}


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def send(f: BinaryIO, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(struct.pack("<Q", len(data)) + data)
    f.flush()


def receive(f: BinaryIO):
    head = f.read(8)
    if len(head) < 8:
        raise EOFError
    (n,) = struct.unpack("<Q", head)
    data = f.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


def _running(model: Model, n: int) -> list[subprocess.Popen] | None:
    procs = _workers.get((model.model_id, n))
    return procs if procs and all(p.poll() is None for p in procs) else None


def _start(model: Model, n: int) -> list[subprocess.Popen]:
    key = (model.model_id, n)
    procs = _running(model, n)
    if procs:
        return procs
    shutdown()
    from tzip.engine import native

    native.library()  # build the C engine once here, not in every worker at the same moment
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "from tzip.codec.workers import main; main()"]
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env) for _ in range(n)]
    blob = model.file.to_bytes()
    for p in procs:
        send(p.stdin, (blob, model.model_id))
    _workers[key] = procs
    return procs


@atexit.register
def shutdown() -> None:
    """Stop every worker (also run at exit)."""
    for procs in _workers.values():
        for p in procs:
            try:
                p.stdin.close()
            except OSError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
    _workers.clear()


class SegmentCoder:
    """encode/decode batches of segments with `workers` processes (1: in this process)."""

    def __init__(self, model: Model, workers: int = 1):
        self.model = model
        on_gpu = not model.on_cpu  # one process drives the GPU
        self.workers = 1 if on_gpu else max(1, workers if workers > 0 else cpu_count())

    def _use_pool(self, n_segments: int, n_bytes: int) -> bool:
        if self.workers <= 1 or n_segments <= 1:
            return False
        return n_bytes >= POOL_MIN_BYTES or _running(self.model, self.workers) is not None

    def _run(self, jobs: list[tuple]) -> list:
        procs = _start(self.model, self.workers)
        try:
            for p, job in zip(procs, jobs):
                send(p.stdin, job)
            replies = [receive(p.stdout) for p in procs[: len(jobs)]]
        except (EOFError, OSError) as e:
            shutdown()
            raise TzipError(f"a worker process died ({type(e).__name__})") from None
        for status, value in replies:
            if status == "coder":
                raise CoderError(value)
            if status != "ok":
                raise TzipError(f"worker failed: {value}")
        return [value for _, value in replies]

    def encode(self, segments: list[bytes], layout: Layout, ways: tuple[str, ...]) -> list[tuple[str, bytes]]:
        """Contiguous groups of segments, one per worker (segments are of equal size but the last)."""
        if not self._use_pool(len(segments), sum(map(len, segments))):
            return encode_segments(self.model, segments, layout, ways)
        n = min(self.workers, len(segments))
        bounds = [len(segments) * i // n for i in range(n + 1)]
        jobs = [("encode", segments[bounds[i] : bounds[i + 1]], layout, ways) for i in range(n)]
        return [c for part in self._run(jobs) for c in part]

    def decode(self, coded: list[bytes], lengths: list[int], layout: Layout, ways: list[str]) -> list[bytes]:
        """Every n-th segment to each worker, so each decodes a batch of about equal lengths in lock-step."""
        if not self._use_pool(len(coded), sum(lengths)):
            return decode_segments(self.model, coded, lengths, layout, ways)
        n = min(self.workers, len(coded))
        parts = self._run([("decode", coded[i::n], lengths[i::n], layout, ways[i::n]) for i in range(n)])
        out: list[bytes] = [b""] * len(coded)
        for i, part in enumerate(parts):
            out[i::n] = part
        return out


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The worker loop: a model, then jobs until stdin closes."""
    from tzip.engine.modelfile import parse
    from tzip.engine.registry import from_file

    blob, model_id = receive(stdin)
    model = from_file(parse(blob))
    if model.model_id != model_id:
        raise SystemExit("worker model does not match the parent's")
    while True:
        try:
            job = receive(stdin)
        except EOFError:
            return
        try:
            if job[0] == "encode":
                reply = ("ok", encode_segments(model, *job[1:]))
            else:
                reply = ("ok", decode_segments(model, *job[1:]))
        except (CoderError, ValueError, RuntimeError) as e:  # what corrupted input raises
            reply = ("coder", str(e))
        except Exception as e:  # reported to the parent, which raises it
            reply = ("error", f"{type(e).__name__}: {e}")
        send(stdout, reply)


def main() -> None:
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the protocol
    serve(sys.stdin.buffer, protocol)
