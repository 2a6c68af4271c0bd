"""Compress and decompress files on a Dask distributed cluster, writing the bytes a local run writes.

What runs where. The client reads every input and writes every output (workers need no shared
file system); workers run the models, which is nearly all of the time. Files go side by side, each
on a client thread, and each file's work goes to the cluster where tzip's format already cuts it
(docs/FORMAT.md):

- Compressing, the client runs the library's own TzipCompressor, fed the same 64 KiB pieces as
  the `tzip` command, so detection, the header, segment boundaries, verbatim frames, the choice
  among stored, zstd and coded frames, the LZMA floor over blocks and the end frame are the
  library's. Only its SegmentCoder, which codes a batch of independent segments on local worker
  processes, is swapped for one that codes each segment of the batch as a task on the cluster:
  a segment of a stream that does not chain codes the same on any worker, in any batch (tzip's
  invariance tests pin this). A stream that chains (text and binary by default:
  codec/chain.py) carries its adaptive stages from segment to segment, so it is compressed
  whole, as one task on one worker.
- Decompressing, the client walks the frames and sends batches of segment frames (TASK_BYTES)
  to workers, which decode them with TzipDecompressor's own `_drain` (segment checksums
  included); the client checks each stream's end frame as it writes. Chained and transcoded
  streams are decoded whole on one worker.

The model. The client ships its model file (about 1 MB) to every worker once per run
(`Client.scatter(broadcast=True)`), so workers need no model installed and always use the
client's; each worker process parses it once and keeps it for every later task and run
(`worker_model_loads` counts).

One file keeps at most a batch's segments busy while it compresses (api.ENCODE_BATCH_BYTES /
segment size: 8 for images, 4 for audio), since the library codes a batch before it cuts the
next; the client fills a larger cluster by running more files at once (docs/CLUSTER.md).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
import tempfile
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from distributed import Client, Future, WorkerPlugin, wait

from tzip.api import METHODS, READ_SIZE, TzipCompressor, TzipDecompressor, stream_decompress
from tzip.codec.workers import SegmentCoder
from tzip.engine.base import Model
from tzip.engine.modelfile import parse
from tzip.engine.registry import from_file, get_model, model_by_id, on_device
from tzip.errors import TzipError
from tzip.format import container as C
from tzip.format.layout import Layout
from tzip.format.transcode import read_whole, to_intermediate

CHUNK = 1 << 16  # pieces fed to the compressor: the tzip command's (cli.CHUNK), so its verbatim frames too
TASK_BYTES = 1 << 19  # decompression: segment bytes per task (as the encoder's batches, api.ENCODE_BATCH_BYTES)
SUFFIX = ".tz"
POLL_S = 0.5  # how often a client thread waiting on the cluster looks whether the run was stopped

# -- the workers' side ------------------------------------------------------------------------

_models: dict[tuple[str, str], Model] = {}
_models_lock = threading.Lock()
_loads: dict[str, int] = {}


def worker_model(model_id: str, blob: bytes, device: str) -> Model:
    """The model `blob` holds, parsed once per process (and device) and kept."""
    key = (model_id, device)
    with _models_lock:
        if key not in _models:
            model = from_file(parse(blob))
            if model.model_id != model_id:
                raise TzipError(f"the model sent to this worker is {model.model_id}, not {model_id}")
            _models[key] = on_device(model, device)
            _loads[model_id] = _loads.get(model_id, 0) + 1
        return _models[key]


def worker_model_loads() -> dict[str, int]:
    """How many times this process has parsed each model, by id (`client.run(worker_model_loads)`
    asks every worker)."""
    return dict(_loads)


def encode_task(model_id: str, blob: bytes, device: str, segments: list[bytes], layout: Layout,
                ways: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """Independent segments (modelling order) coded as the compressor's SegmentCoder codes them in
    one process: (way, coded bytes) each."""
    return SegmentCoder(worker_model(model_id, blob, device), 1).encode(segments, layout, ways)


def compress_task(model_id: str, blob: bytes, device: str, opts: dict, transcoded_from: str | None,
                  data: bytes) -> bytes:
    """A whole stream (one that chains), fed in the tzip command's pieces."""
    comp = TzipCompressor(**opts, model=worker_model(model_id, blob, device), transcoded_from=transcoded_from,
                          workers=1)
    return b"".join([comp.compress(data[i : i + CHUNK]) for i in range(0, len(data), CHUNK)] + [comp.flush()])


def decode_task(model_id: str, blob: bytes, device: str, header: C.Header, frames: list[C.Frame]) -> bytes:
    """The original bytes of consecutive segment frames of a stream that does not chain, decoded and
    checked by TzipDecompressor's own `_drain`."""
    d = TzipDecompressor(worker_model(model_id, blob, device), workers=1)
    d.header, d.queue = header, frames
    d._drain()
    return bytes(d.out)


def decompress_task(model_id: str, blob: bytes, device: str, stream: bytes) -> bytes:
    """One whole stream (chained or transcoded), checked against its end frame."""
    pieces = iter([stream])
    return b"".join(stream_decompress(lambda: next(pieces, b""), worker_model(model_id, blob, device)))


class Integrations(WorkerPlugin):
    """Imports tzip.integrations in every worker process, present and future: fsspec reads no entry
    points for compressions, so a task that opens a .tz file through fsspec (dask.dataframe's
    read_csv("*.csv.tz") on a cluster) needs tzip registered where it runs (`install`)."""

    name = "tzip-integrations"

    def setup(self, worker) -> None:
        import tzip.integrations  # noqa: F401  (registers tzip with fsspec and numcodecs)


def install(client: Client) -> None:
    """Register tzip with fsspec and numcodecs on every worker of `client`'s cluster."""
    client.register_plugin(Integrations())


# -- the client's side ------------------------------------------------------------------------


class Sink(Protocol):
    """Where one input's output goes: written in order, then committed, or aborted on failure."""

    def write(self, data: bytes) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class FileOutput:
    """A temporary file beside `target`, renamed onto it only when complete (as `tzip` writes)."""

    def __init__(self, target: str, force: bool = False):
        if os.path.exists(target) and not force:
            raise TzipError(f"{target} already exists; use force=True to overwrite")
        self.target = target
        fd, self.tmp = tempfile.mkstemp(prefix=".tzip-", suffix=".part", dir=os.path.dirname(os.path.abspath(target)))
        self.f = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.f.write(data)

    def commit(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        self.f.close()
        os.unlink(self.tmp)


class StdOutput:
    """Standard output."""

    def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)

    def commit(self) -> None:
        sys.stdout.buffer.flush()

    def abort(self) -> None:
        pass


class _Held:
    """Output bound for standard output, held (in memory, then on disk) until the inputs before it
    are written: files finish in any order, standard output takes them in the order given."""

    def __init__(self):
        self.f = tempfile.SpooledTemporaryFile(max_size=64 << 20)

    def write(self, data: bytes) -> None:
        self.f.write(data)

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        self.f.close()

    def copy_to(self, out: Sink) -> None:
        self.f.seek(0)
        for chunk in iter(lambda: self.f.read(1 << 20), b""):
            out.write(chunk)
        self.f.close()


@dataclass
class Result:
    """One input's outcome: where its output went (None: standard output), bytes read and written,
    and the error that stopped it, if any."""

    name: str
    target: str | None
    read: int = 0
    written: int = 0
    error: TzipError | None = None


class _Stopped(Exception):
    """The run stopped (another input failed, or an interrupt): unfinished outputs are removed."""


class _Chained(Exception):
    """The stream chains: it is compressed whole, as one task."""


class _Context:
    """What a run's files share: the client, the model files sent to the workers, and a stop flag."""

    def __init__(self, client: Client, device: str):
        self.client, self.device = client, device
        self.stop = threading.Event()
        self.blobs: dict[str, Future] = {}
        self.lock = threading.Lock()

    def submit(self, fn: Callable, model: Model, *args) -> Future:
        """fn(model id, model file, device, *args) as a task."""
        with self.lock:  # one scatter of each model per run
            if model.model_id not in self.blobs:
                self.blobs[model.model_id] = self.client.scatter(model.file.to_bytes(), broadcast=True, hash=False)
        return self.client.submit(fn, model.model_id, self.blobs[model.model_id], self.device, *args, pure=False)

    def scatter(self, data: bytes) -> Future:
        return self.client.scatter(data, hash=False)

    def check(self) -> None:
        if self.stop.is_set():
            raise _Stopped

    def gather(self, futures: list[Future]) -> list:
        """The futures' results (a task's error raised here), waiting no longer than a stop."""
        while True:
            try:
                with self.client.as_current():  # this thread's client, the default one or not
                    wait(futures, timeout=POLL_S)
                break
            except TimeoutError:
                if self.stop.is_set():
                    for f in futures:
                        f.cancel()
                    raise _Stopped from None
        return [f.result() for f in futures]


class _ClusterCoder:
    """Stands in for a compressor's SegmentCoder: each segment of a batch is a task (encode_task)."""

    def __init__(self, ctx: _Context, model: Model):
        self.ctx, self.model = ctx, model

    def encode(self, segments: list[bytes], layout: Layout, ways: tuple[str, ...]) -> list[tuple[str, bytes]]:
        futures = [self.ctx.submit(encode_task, self.model, [s], layout, ways) for s in segments]
        return [coded for one in self.ctx.gather(futures) for coded in one]


class _Planner(TzipCompressor):
    """The client's compressor: the library's, its segments coded on the cluster; a stream that
    chains is refused (_Chained) before any segment of it is coded."""

    def _code_batch(self) -> bytes:
        if self.chain_way is not None:
            raise _Chained
        return super()._code_batch()


def _open_input(name: str) -> BinaryIO:
    if name == "-":
        return sys.stdin.buffer
    try:
        return open(name, "rb")  # noqa: SIM115  (closed by the caller)
    except OSError as e:
        raise TzipError(f"cannot read {name}: {e.strerror}") from None


def _compress_one(ctx: _Context, result: Result, sink: Sink, opts: dict, model: Model, transcode: bool) -> None:
    src = _open_input(result.name)

    def put(data: bytes) -> None:
        sink.write(data)
        result.written += len(data)

    try:
        # as the tzip command does: a PNG/FLAC to transcode, a tar or a file that may hold zlib
        # streams is read whole and coded as its intermediate form where it has one
        tag, data, got, head = None, None, None, b""
        if transcode:
            data = src.read()
            got = to_intermediate(data)
        else:
            head = src.read(CHUNK)
            size = None if src is sys.stdin.buffer else os.fstat(src.fileno()).st_size
            data, got = read_whole(head, src.read, size, opts.get("modality"))
        if data is not None:
            result.read = len(data)
        if got is not None:
            data, tag = got
        if data is not None:
            chunks: Iterable[bytes] = (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
        else:
            chunks = itertools.chain([head], iter(lambda: src.read(CHUNK), b""))
        planner = _Planner(model=model, transcoded_from=tag, **opts)
        planner.coder = _ClusterCoder(ctx, model)
        seen: list[bytes] = []  # the input until the stream is known not to chain
        try:
            for chunk in chunks:
                ctx.check()
                result.read += 0 if data is not None else len(chunk)
                if planner.split is None:
                    seen.append(chunk)
                out = planner.compress(chunk)
                if planner.chain_way is not None:
                    raise _Chained
                put(out)
            put(planner.flush())
        except _Chained:  # decided with the header, before anything of the stream was written
            if data is None:
                rest = src.read()
                result.read += len(rest)
                data = b"".join([*seen, rest])
            put(ctx.gather([ctx.submit(compress_task, model, opts, tag, ctx.scatter(data))])[0])
    finally:
        if src is not sys.stdin.buffer:
            src.close()


@dataclass
class _Check:
    """A stream's end frame: what its original bytes measure."""

    total: int
    crc: int


class _Writer:
    """A file's decompressed parts in order (bytes, or Futures of bytes), at most `window` tasks in
    flight; each stream's length and CRC32 are checked against its end frame."""

    def __init__(self, ctx: _Context, result: Result, sink: Sink, window: int):
        self.ctx, self.result, self.sink, self.window = ctx, result, sink, window
        self.pending: deque = deque()
        self.in_flight = self.crc = self.total = 0

    def put(self, part) -> None:
        self.pending.append(part)
        self.in_flight += isinstance(part, Future)
        while self.in_flight > self.window:
            self.take()

    def begin(self) -> None:
        self.put(None)

    def take(self) -> None:
        part = self.pending.popleft()
        if isinstance(part, Future):
            self.in_flight -= 1
            part = self.ctx.gather([part])[0]
        if part is None:  # a stream begins
            self.crc = self.total = 0
        elif isinstance(part, _Check):
            if (part.total, part.crc) != (self.total, self.crc):
                raise TzipError("corrupted tzip stream (checksum of the original does not match)")
        else:
            self.sink.write(part)
            self.crc, self.total = zlib.crc32(part, self.crc), self.total + len(part)
            self.result.written += len(part)

    def finish(self) -> None:
        while self.pending:
            self.take()


def _decompress_one(ctx: _Context, result: Result, sink: Sink, model_spec, window: int) -> None:
    src, buf, out = _open_input(result.name), bytearray(), _Writer(ctx, result, sink, window)

    def fill() -> bool:
        ctx.check()
        chunk = src.read(READ_SIZE)
        result.read += len(chunk)
        buf.extend(chunk)
        return bool(chunk)

    try:
        if not fill():
            raise TzipError("not a tzip stream (empty input)")
        while buf or fill():  # a stream
            while len(buf) < C.HEADER_SIZE and fill():
                pass
            C.check_prefix(bytes(buf[: C.HEADER_SIZE]))
            header = C.Header.unpack(bytes(buf[: C.HEADER_SIZE]))
            model = get_model(model_spec) if model_spec else model_by_id(header.model_id)
            if model.model_id != header.model_id:
                raise TzipError(f"this stream needs model {header.model_id}, but the given model is {model.model_id}")
            whole = header.chained or header.transcode is not None
            pos, batch, size = C.HEADER_SIZE, [], 0
            out.begin()
            while True:
                got = C.read_frame(buf, pos, header.segment_size)
                if got is None:
                    if not fill():
                        raise TzipError("truncated tzip stream (ended before its end frame)")
                    continue
                frame, pos = got
                if whole:
                    if frame.kind == C.FRAME_END:
                        out.put(ctx.submit(decompress_task, model, ctx.scatter(bytes(buf[:pos]))))
                        break
                    continue
                if frame.kind == C.FRAME_SEGMENT:
                    batch.append(frame)
                    size += frame.raw_len
                if batch and (frame.kind != C.FRAME_SEGMENT or size >= TASK_BYTES):
                    out.put(ctx.submit(decode_task, model, header, batch))
                    batch, size = [], 0
                if frame.kind == C.FRAME_VERBATIM:
                    out.put(frame.body)
                elif frame.kind == C.FRAME_END:
                    out.put(_Check(frame.total, frame.crc))
                    break
                del buf[:pos]  # a stream decoded in parts is let go of frame by frame
                pos = 0
            del buf[:pos]
        out.finish()
    finally:
        if src is not sys.stdin.buffer:
            src.close()


def _run(ctx: _Context, names: list[str], targets: list[str | None], work: Callable[[Result, Sink], None],
         open_output: Callable[[str, str | None], Sink], on_error: Callable[[str, TzipError], None] | None,
         files_at_once: int) -> list[Result]:
    """work(result, sink) for every input, `files_at_once` on client threads at a time."""
    results = [Result(n, t) for n, t in zip(names, targets)]

    def one(result: Result) -> _Held | None:
        sink = _Held() if result.target is None else open_output(result.name, result.target)
        try:
            work(result, sink)
        except BaseException:
            sink.abort()
            raise
        sink.commit()
        return sink if result.target is None else None

    pool = ThreadPoolExecutor(files_at_once, thread_name_prefix="tzip-file")
    try:
        futures = [pool.submit(one, r) for r in results]
        for result, future in zip(results, futures):
            try:
                held = future.result()
                if held is not None:
                    out = open_output(result.name, None)
                    held.copy_to(out)
                    out.commit()
            except _Stopped:
                result.error = TzipError("stopped")
            except (TzipError, ValueError, OSError) as e:
                result.error = e if isinstance(e, TzipError) else TzipError(str(e))
            except Exception as e:  # a task the cluster could not run (a worker lost, ...)
                result.error = TzipError(f"a cluster task failed ({type(e).__name__}: {e})")
            if result.error is not None and not ctx.stop.is_set():
                if on_error is None:
                    raise result.error
                on_error(result.name, result.error)
    except BaseException:
        ctx.stop.set()  # the other files stop at their next piece or task and remove their outputs
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def connect(client: Client | str, timeout: str = "10s") -> tuple[Client, bool]:
    """(a client, whether this call opened it): `client` itself, or one connected to that address
    (OSError where none answers within `timeout`)."""
    if isinstance(client, Client):
        return client, False
    return Client(client, timeout=timeout), True


def _targets(paths: list[str], targets: list[str | None] | None, decompress: bool) -> list[str | None]:
    if targets is not None:
        if len(targets) != len(paths):
            raise ValueError("targets must name one output per path")
        return list(targets)
    if decompress:
        bad = [p for p in paths if p != "-" and not p.endswith(SUFFIX)]
        if bad:
            raise ValueError(f"{bad[0]}: unknown suffix (expected {SUFFIX}); pass targets")
        return [None if p == "-" else p[: -len(SUFFIX)] for p in paths]
    return [None if p == "-" else p + SUFFIX for p in paths]


def _files(paths, targets, decompress: bool, client, device: str, force: bool, open_output, on_error,
           files_at_once: int | None, work: Callable[[_Context, Result, Sink, int], None]) -> list[Result]:
    paths = [os.fspath(p) for p in paths]
    outs = _targets(paths, targets, decompress)
    opener = open_output or (lambda name, target: StdOutput() if target is None else FileOutput(target, force))
    client, own = connect(client)
    try:
        threads = max(1, sum(client.nthreads().values()))
        ctx = _Context(client, device)
        return _run(ctx, paths, outs, lambda result, sink: work(ctx, result, sink, threads), opener, on_error,
                    files_at_once or threads + 1)
    finally:
        if own:
            client.close()


def compress_files(paths: Iterable[str | os.PathLike], client: Client | str, *,
                   targets: list[str | None] | None = None, force: bool = False, modality: str | None = None,
                   segment_size: int | None = None, model: str | os.PathLike | None = None,
                   methods: tuple[str, ...] = METHODS, chain: bool | None = None, transcode: bool = False,
                   device: str = "cpu", open_output: Callable[[str, str | None], Sink] | None = None,
                   on_error: Callable[[str, TzipError], None] | None = None,
                   files_at_once: int | None = None) -> list[Result]:
    """Compress each path to path + ".tz" (or its entry of `targets`; None: standard output; "-":
    standard input) on the Dask cluster `client` (a distributed.Client or a scheduler address),
    with the bytes `tzip` writes for it locally. Options as for TzipCompressor, `transcode` as for
    `tzip.compress`; device: where workers run the model ("cpu", "cuda", "auto").

    open_output(name, target) makes each output's sink (default: FileOutput, a temporary file
    renamed when complete). on_error(name, error) is told of each input that fails and the others
    go on; without it the first failure stops the run: outputs already complete stay, unfinished
    ones are removed, and the error is raised. files_at_once: inputs in progress at a time
    (default: the cluster's threads, plus one)."""
    opts = {"modality": modality, "segment_size": segment_size, "methods": tuple(methods), "chain": chain}
    local = get_model(model)
    TzipCompressor(**opts, model=local)  # bad options fail here, before any file is touched

    def work(ctx: _Context, result: Result, sink: Sink, threads: int) -> None:
        _compress_one(ctx, result, sink, opts, local, transcode)

    return _files(paths, targets, False, client, device, force, open_output, on_error, files_at_once, work)


def decompress_files(paths: Iterable[str | os.PathLike], client: Client | str, *,
                     targets: list[str | None] | None = None, force: bool = False,
                     model: str | os.PathLike | None = None, device: str = "cpu",
                     open_output: Callable[[str, str | None], Sink] | None = None,
                     on_error: Callable[[str, TzipError], None] | None = None,
                     files_at_once: int | None = None) -> list[Result]:
    """Decompress each .tz path to the path without ".tz" (or its entry of `targets`) on the Dask
    cluster `client`; the other arguments as for compress_files. Every stream of a file is
    decoded (concatenated streams, as `tzip -d`), each checked against its end frame."""

    def work(ctx: _Context, result: Result, sink: Sink, threads: int) -> None:
        _decompress_one(ctx, result, sink, model, threads + 1)

    return _files(paths, targets, True, client, device, force, open_output, on_error, files_at_once, work)


class _Digest:
    """A sink that keeps only the SHA-256 of what it is given."""

    def __init__(self):
        self.h = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.h.update(data)

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass


def verify_files(originals: list[str], compressed: list[str], client: Client | str, *,
                 model: str | os.PathLike | None = None, device: str = "cpu") -> list[bool]:
    """Whether each compressed file decompresses, on the cluster, to its original byte for byte
    (what `tzip --rm` checks before it removes an input)."""
    digests = {name: _Digest() for name in compressed}
    results = decompress_files(compressed, client, targets=list(compressed), model=model, device=device,
                               open_output=lambda name, target: digests[name], on_error=lambda name, e: None)
    ok = []
    for original, r in zip(originals, results):
        want = hashlib.sha256()
        with open(original, "rb") as f:
            for chunk in iter(lambda f=f: f.read(CHUNK), b""):
                want.update(chunk)
        ok.append(r.error is None and digests[r.name].h.digest() == want.digest())
    return ok
