"""The `tzip` command: gzip/zstd-style flags on top of the library API.

    tzip FILE...            compress each FILE to FILE.tz (input kept; --rm removes it)
    tzip -d FILE.tz...      decompress
    tzip -c / -o OUT / -    to stdout / to OUT / stdin
    tzip info FILE.tz       what is inside
    tzip --version          the version, the default model's id and the engine

Exit status: 0 ok, 1 error, 2 usage. Outputs are written to a temporary name and renamed only
when complete; an input is removed (--rm) only after its output has been verified.
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
import time
from enum import Enum

import typer

from tzip.api import IMAGE_ROWS, IMAGE_SEGMENT_CEILING, SEGMENT_BY_MODALITY, TzipCompressor, stream_decompress
from tzip.errors import TzipError
from tzip.format import container as C
from tzip.format.layout import MODALITY_NAMES
from tzip.format.transcode import read_whole, to_intermediate

SUFFIX = ".tz"
CHUNK = 1 << 16  # read size: also how often the progress bar moves
app = typer.Typer(add_completion=False, no_args_is_help=False, context_settings={"help_option_names": ["-h", "--help"]})


Mode = Enum("Mode", {name: name for name in MODALITY_NAMES.values()}, type=str)  # --mode's choices


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Failed(Exception):
    """One input failed; the message was already printed."""


def say(msg: str) -> None:
    print(f"tzip: {msg}", file=sys.stderr)


class Progress:
    """A progress bar with bytes/s, shown only on a terminal and only for work over a second."""

    def __init__(self, label: str, total: int | None, quiet: bool):
        self.label, self.total, self.start = label, total, time.time()
        self.enabled = not quiet and sys.stderr.isatty()
        self.bar = None
        self.done = 0

    def advance(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is None and time.time() - self.start > 1.0:
            from rich.progress import BarColumn, DownloadColumn, TransferSpeedColumn
            from rich.progress import Progress as Bar

            self.bar = Bar("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                           TransferSpeedColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total, completed=self.done)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def setup_engine(device: Device) -> str:
    """The engine's device ('cpu' or 'cuda'); errors if CUDA was asked for and is absent."""
    from tzip.engine.registry import resolve_device

    # where torch runs (the reference engine, the GPU backend) its ops are small: one thread
    # each, and a worker process per core; read by torch when it is imported
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return resolve_device(device.value)


def open_input(name: str):
    if name == "-":
        return sys.stdin.buffer, None
    try:
        f = open(name, "rb")
        return f, os.fstat(f.fileno()).st_size
    except OSError as e:
        raise TzipError(f"cannot read {name}: {e.strerror}") from None


class Output:
    """Writes to stdout, or to a temporary file renamed onto the target only on `commit`."""

    def __init__(self, target: str | None, force: bool, mode: int | None = None):
        self.target, self.tmp, self.mode = target, None, mode
        if target is None:
            self.f = sys.stdout.buffer
            return
        if os.path.exists(target) and not force:
            raise TzipError(f"{target} already exists; use -f to overwrite")
        d = os.path.dirname(os.path.abspath(target))
        fd, self.tmp = tempfile.mkstemp(prefix=".tzip-", suffix=".part", dir=d)
        self.f = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        if data:
            self.f.write(data)

    def commit(self) -> None:
        if self.tmp is None:
            self.f.flush()
            return
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        if self.mode is None:  # like a new file: 0666 less the umask (mkstemp made it 0600)
            umask = os.umask(0)
            os.umask(umask)
            self.mode = 0o666 & ~umask
        os.chmod(self.tmp, self.mode)
        os.replace(self.tmp, self.target)
        self.tmp = None

    def abort(self) -> None:
        if self.tmp is not None:
            self.f.close()
            os.unlink(self.tmp)
            self.tmp = None


def compress_stream(src, out: Output, size: int | None, opts: dict, transcode: bool, quiet: bool, label: str) -> int:
    """Returns the number of bytes written."""
    written = 0
    prog = Progress(label, size, quiet)
    try:
        # a PNG/FLAC to transcode, a tar, or a file that may hold deflate streams, is read whole (its
        # intermediate form replaces it where there is one); any other input streams through
        tag, data, got = None, None, None
        if transcode:
            data = src.read()
            got = to_intermediate(data)
            if got is None and not quiet:
                say(f"{label}: not a PNG/FLAC that can be transcoded exactly; stored as an ordinary file")
        else:
            head = src.read(CHUNK)
            data, got = read_whole(head, src.read, size, opts.get("modality"))  # tar gathered, deflate inflated
        if got is not None:
            data, tag = got
            prog.total = len(data) if prog.total is not None else None
        if data is not None:
            chunks = (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
        else:
            chunks = itertools.chain([head], iter(lambda: src.read(CHUNK), b""))
        comp = TzipCompressor(transcoded_from=tag, **opts)
        for chunk in chunks:
            piece = comp.compress(chunk)
            out.write(piece)
            written += len(piece)
            prog.advance(len(chunk))
        piece = comp.flush()
        out.write(piece)
        return written + len(piece)
    finally:
        prog.close()


def decompress_stream(src, out: Output, size: int | None, opts: dict, quiet: bool, label: str) -> int:
    written, prog = 0, Progress(label, size, quiet)

    def read() -> bytes:
        chunk = src.read(CHUNK)
        prog.advance(len(chunk))
        return chunk

    try:
        for piece in stream_decompress(read, opts.get("model"), workers=opts.get("workers", 1),
                                       device=opts.get("device", "cpu")):
            out.write(piece)
            written += len(piece)
        return written
    finally:
        prog.close()


def verify(path: str, original: str, opts: dict) -> None:
    """Decompress `path` and compare with `original` byte for byte (before --rm)."""
    import hashlib

    got, want = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as f:
        for piece in stream_decompress(lambda: f.read(CHUNK), opts.get("model"), workers=opts.get("workers", 1),
                                       device=opts.get("device", "cpu")):
            got.update(piece)
    with open(original, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            want.update(chunk)
    if got.digest() != want.digest():
        raise TzipError(f"verification of {path} failed; {original} was kept")


def target_for(name: str, decompress: bool, stdout: bool, output: str | None, force: bool) -> str | None:
    """Where the output of input `name` goes (None: standard output); TzipError where it may not."""
    if stdout or (name == "-" and not output):
        target = None
    elif output:
        target = output
    elif decompress:
        if not name.endswith(SUFFIX):
            raise TzipError(f"{name}: unknown suffix (expected {SUFFIX}); use -o or -c")
        target = name[: -len(SUFFIX)]
    else:
        if name.endswith(SUFFIX) and not force:
            raise TzipError(f"{name} already has the {SUFFIX} suffix; use -f to compress it again")
        target = name + SUFFIX
    if target is None and not decompress and not force and sys.stdout.isatty():
        raise TzipError("compressed data not written to a terminal; use -o or redirect (-f to force)")
    return target


def run_files(files: list[str], decompress: bool, stdout: bool, output: str | None, force: bool,
              rm: bool, quiet: bool, verbose: bool, opts: dict, transcode: bool) -> int:
    if not files:
        files = ["-"]
    if output and len(files) > 1:
        say("-o can be used with a single input only")
        return 2
    report_engine(opts.get("device", "cpu"), quiet, verbose)
    status = 0
    for name in files:
        target = None
        try:
            target = target_for(name, decompress, stdout, output, force)
            src, size = open_input(name)
            out = Output(target, force, None if name == "-" else os.stat(name).st_mode & 0o777)
            try:
                if decompress:
                    n = decompress_stream(src, out, size, opts, quiet, name)
                else:
                    n = compress_stream(src, out, size, opts, transcode, quiet, name)
                out.commit()
            except BaseException:
                out.abort()
                raise
            finally:
                if src is not sys.stdin.buffer:
                    src.close()
            if verbose and size is not None:
                ratio = (1 - n / size) * 100 if not decompress and size else (1 - size / n) * 100 if n else 0.0
                say(f"{name}: {ratio:5.1f}% -- {'to ' + target if target else 'to stdout'}")
            if rm and target and name != "-":
                if not decompress:
                    verify(target, name, opts)
                os.unlink(name)
        except TzipError as e:
            say(str(e) if str(e).startswith(name) else f"{name}: {e}")
            status = 1
        except KeyboardInterrupt:
            say("interrupted")
            return 1
    return status


def run_cluster(address: str, files: list[str], decompress: bool, stdout: bool, output: str | None, force: bool,
                rm: bool, verbose: bool, opts: dict, transcode: bool) -> int:
    """--scheduler: run_files's outputs, byte for byte, with the coding done on the Dask cluster at
    `address` (tzip.integrations.dask): files side by side, a large file's independent segments
    too. The model runs on the workers, on opts["device"] as each resolves it."""
    try:
        from tzip.integrations import dask as cluster
    except ImportError as e:
        say(f"--scheduler needs dask.distributed ({e}); pip install 'tzip[cluster]'")
        return 1
    files = files or ["-"]
    if output and len(files) > 1:
        say("-o can be used with a single input only")
        return 2
    status, names, targets = 0, [], []

    def failed(name: str, e: Exception) -> None:
        nonlocal status
        say(str(e) if str(e).startswith(name) else f"{name}: {e}")
        status = 1

    for name in files:
        try:
            targets.append(target_for(name, decompress, stdout, output, force))
            names.append(name)
        except TzipError as e:
            failed(name, e)
    try:
        client, _ = cluster.connect(address)
    except (OSError, ValueError) as e:
        say(f"cannot reach the scheduler at {address}: {e}")
        return 1
    with client:
        try:
            done = cluster_files(cluster, client, names, targets, decompress, force, rm, opts, transcode, failed)
        except KeyboardInterrupt:
            say("interrupted")
            return 1
    for r in done:
        if verbose and r.name != "-":
            n, size = r.written, r.read
            ratio = (1 - n / size) * 100 if not decompress and size else (1 - size / n) * 100 if n else 0.0
            say(f"{r.name}: {ratio:5.1f}% -- {'to ' + r.target if r.target else 'to stdout'}")
        if rm and r.target and r.name != "-":
            os.unlink(r.name)
    return status


def cluster_files(cluster, client, names: list[str], targets: list[str | None], decompress: bool, force: bool,
                  rm: bool, opts: dict, transcode: bool, failed) -> list:
    """run_cluster's work: the files coded on the cluster, written as Output writes them; the
    results of those that succeeded (and, with --rm, whose outputs were verified)."""
    kw = dict(targets=targets, model=opts.get("model"), device=opts["device"], on_error=failed,
              open_output=lambda name, target: Output(target, force,
                                                      None if name == "-" else os.stat(name).st_mode & 0o777))
    if decompress:
        results = cluster.decompress_files(names, client, **kw)
    else:
        results = cluster.compress_files(names, client, modality=opts.get("modality"), transcode=transcode,
                                         segment_size=opts.get("segment_size"), chain=opts.get("chain"), **kw)
    done = [r for r in results if r.error is None]
    if rm and not decompress:  # an input goes only once its output decompresses to it, checked on the cluster
        checked = [r for r in done if r.target and r.name != "-"]
        for r, ok in zip(checked, cluster.verify_files([r.name for r in checked], [r.target for r in checked],
                                                      client, model=opts.get("model"), device=opts["device"])):
            if not ok:
                failed(r.name, TzipError(f"verification of {r.target} failed; {r.name} was kept"))
                done.remove(r)
    return done


MODEL_OPT = typer.Option(None, "--model", help="model file or id (default: the shipped default model)")
DEVICE_OPT = typer.Option(Device.auto, "--device", help="where the engine runs")
THREADS_OPT = typer.Option(0, "--threads", "-T", min=0,
                           help="worker processes coding segments in parallel (0: one per core)")


STDOUT_OPT = typer.Option(False, "-c", "--stdout", help="write to standard output")
OUTPUT_OPT = typer.Option(None, "-o", "--output", help="output file (single input)")
FORCE_OPT = typer.Option(False, "-f", "--force", help="overwrite existing outputs")
KEEP_OPT = typer.Option(True, "-k", "--keep", help="keep inputs (the default)")
RM_OPT = typer.Option(False, "--rm", help="remove inputs once their output is complete and verified")
QUIET_OPT = typer.Option(False, "-q", "--quiet")
VERBOSE_OPT = typer.Option(False, "-v", "--verbose")
SCHEDULER_OPT = typer.Option(None, "--scheduler", metavar="ADDRESS",
                             help="code on the Dask distributed cluster at ADDRESS (e.g. tcp://host:8786), "
                                  "with the same output; needs dask.distributed (the cluster extra)")


def report_engine(device: str, quiet: bool, verbose: bool) -> None:
    """Say which engine runs (with -v), and say it once if the fast C engine is missing."""
    if device != "cpu":
        if verbose:
            say(f"engine: Triton on {device}")
        return
    from tzip.engine import library

    if library.available():
        if verbose:
            say(f"engine: C ({library.level()})")
    elif verbose or (not quiet and os.environ.get("TZIP_NATIVE") != "0"):
        say(f"engine: PyTorch, much slower: the C engine is unavailable ({library.unavailable_reason()}); "
            "reinstall tzip, or set TZIP_NATIVE=0 to silence this")


def start_engine(device: Device) -> str:
    try:
        return setup_engine(device)
    except TzipError as e:
        say(str(e))
        raise typer.Exit(1) from None


@app.command("compress")
def compress_cmd(
    files: list[str] = typer.Argument(None, help="files to compress ('-' for stdin)"),
    decompress: bool = typer.Option(False, "-d", "--decompress", help="decompress instead"),
    list_: bool = typer.Option(False, "-l", "--list", help="list .tz FILEs: sizes, ratio, modality, methods"),
    stdout: bool = STDOUT_OPT, output: str | None = OUTPUT_OPT, force: bool = FORCE_OPT,
    keep: bool = KEEP_OPT, rm: bool = RM_OPT, quiet: bool = QUIET_OPT, verbose: bool = VERBOSE_OPT,
    mode: Mode | None = typer.Option(None, "--mode", help="override content detection"),
    segment_size: int | None = typer.Option(None, "--segment-size",
                                     help="bytes per segment (default: " + ", ".join(
                                         f"{MODALITY_NAMES[m]} {n // 1024} KiB" for m, n in SEGMENT_BY_MODALITY.items())
                                     + f"; images at least {IMAGE_ROWS} rows, to {IMAGE_SEGMENT_CEILING // 1024} KiB)"),
    transcode: bool = typer.Option(False, "--transcode", help="store PNG/FLAC as pixels/samples"),
    independent: bool = typer.Option(False, "--independent",
                                     help="code every segment on its own, so that decompressing uses every core "
                                          "(text and binary otherwise chain their segments' adaptive stages: "
                                          "3-24 % smaller)"),
    model: str | None = MODEL_OPT, device: Device = DEVICE_OPT, threads: int = THREADS_OPT,
    scheduler: str | None = SCHEDULER_OPT,
) -> None:
    """Compress FILEs (or decompress with -d, list with -l)."""
    if list_:
        raise typer.Exit(list_files(files or []))
    opts = {"model": model, "workers": threads, "device": "cpu" if scheduler else start_engine(device)}
    if not decompress:
        opts.update(modality=mode.value if mode else None, segment_size=segment_size,
                    chain=False if independent else None)
        try:
            TzipCompressor(**opts)  # fail early on a bad model or option, before touching files
        except (TzipError, ValueError) as e:
            say(str(e))
            raise typer.Exit(2 if isinstance(e, ValueError) else 1) from None
    if scheduler:
        raise typer.Exit(run_cluster(scheduler, files or [], decompress, stdout, output, force, rm, verbose,
                                     {**opts, "device": device.value}, transcode))
    raise typer.Exit(run_files(files or [], decompress, stdout, output, force, rm, quiet, verbose, opts, transcode))


@app.command("decompress")
def decompress_cmd(
    files: list[str] = typer.Argument(None, help=".tz files to decompress ('-' for stdin)"),
    stdout: bool = STDOUT_OPT, output: str | None = OUTPUT_OPT, force: bool = FORCE_OPT,
    keep: bool = KEEP_OPT, rm: bool = RM_OPT, quiet: bool = QUIET_OPT, verbose: bool = VERBOSE_OPT,
    decompress_flag: bool = typer.Option(True, "-d", "--decompress", hidden=True),
    model: str | None = MODEL_OPT, device: Device = DEVICE_OPT, threads: int = THREADS_OPT,
    scheduler: str | None = SCHEDULER_OPT,
) -> None:
    """Decompress .tz FILEs."""
    if scheduler:
        raise typer.Exit(run_cluster(scheduler, files or [], True, stdout, output, force, rm, verbose,
                                     {"model": model, "device": device.value}, False))
    opts = {"model": model, "workers": threads, "device": start_engine(device)}
    raise typer.Exit(run_files(files or [], True, stdout, output, force, rm, quiet, verbose, opts, False))


def list_files(files: list[str]) -> int:
    """`tzip -l`, like `xz -l`: a line per file (every stream in it together), then a total line."""
    if not files:
        say("-l needs .tz files")
        return 2
    print(f"{'compressed':>12} {'uncompressed':>13} {'ratio':>6}  {'modality':<8} {'methods':<24} name")
    status, total_c, total_u, listed = 0, 0, 0, 0
    for name in files:
        try:
            src, _ = open_input(name)
            data = src.read()
            streams = C.streams(data)
        except TzipError as e:
            say(f"{name}: {e}")
            status = 1
            continue
        raw = sum(frames[-1].total for _, frames in streams)
        counts: dict[str, int] = {}
        for _, frames in streams:
            for f in frames:
                if f.kind == C.FRAME_SEGMENT:
                    counts[C.METHOD_NAMES[f.method]] = counts.get(C.METHOD_NAMES[f.method], 0) + 1
        methods = ", ".join(f"{n} {m}" for m, n in counts.items()) or "-"
        forms = {f for h, _ in streams if h.transcode in C.BYTE_EXACT for f in h.transcode.split("+")}
        if "deflate" in forms:  # sizes are of the intermediate form
            methods = f"inflated; {methods}"
        if "tar" in forms:
            methods = f"tar gathered; {methods}"
        modality = "+".join(dict.fromkeys(MODALITY_NAMES[h.layout.modality] for h, _ in streams))
        print(f"{len(data):>12,} {raw:>13,} {len(data) / max(1, raw):>6.3f}  {modality:<8} {methods:<24} {name}")
        total_c, total_u, listed = total_c + len(data), total_u + raw, listed + 1
    if listed > 1:
        print(f"{total_c:>12,} {total_u:>13,} {total_c / max(1, total_u):>6.3f}  {'':<8} {'':<24} ({listed} files)")
    return status


@app.command("info")
def info_cmd(files: list[str] = typer.Argument(..., help=".tz files")) -> None:
    """Show modality, model id, sizes, ratio and the coding method of every segment."""
    status = 0
    for name in files:
        try:
            src, _ = open_input(name)
            data = src.read()
            for header, frames in C.streams(data):
                segs = [f for f in frames if f.kind == C.FRAME_SEGMENT]
                total = frames[-1].total
                print(f"{name}:")
                print(f"  modality      {MODALITY_NAMES[header.layout.modality]}"
                      f"{' (16-bit samples, MSB first)' if header.swapped else ''}")
                byte_exact = header.transcode in C.BYTE_EXACT
                if byte_exact and "tar" in header.transcode:
                    print("  tar           headers gathered before the members' contents, rebuilt byte for byte")
                if byte_exact and "deflate" in header.transcode:
                    print("  expanded      deflate streams inflated before modelling, rebuilt byte for byte")
                elif header.transcode and not byte_exact:
                    tag = header.transcode.upper()
                    unit = "pixels" if header.transcode == "png" else "samples"
                    print(f"  transcoded    from {tag}: decompresses to a {tag} with identical {unit}"
                          ", not identical bytes")
                if header.x86:
                    print("  x86 filter    call and jump targets made absolute before modelling")
                print(f"  layout        offsets {list(header.layout.offsets)}, period {header.layout.period}")
                print(f"  model id      {header.model_id}")
                print(f"  segment size  {header.segment_size}"
                      f"{', chained (the adaptive stages carry on across segments)' if header.chained else ''}")
                print(f"  {'intermediate' if byte_exact else 'original':<13} {total} bytes")
                print(f"  compressed    {len(data)} bytes, ratio {len(data) / max(1, total):.4f}"
                      f" ({8 * len(data) / max(1, total):.3f} bits/byte)")
                print(f"  verbatim      {sum(f.raw_len for f in frames if f.kind == C.FRAME_VERBATIM)} bytes")
                for m, label in C.METHOD_NAMES.items():
                    chosen = [f for f in segs if f.method == m]
                    if chosen:
                        print(f"  {label:<13} {len(chosen)} segments, {sum(f.raw_len for f in chosen)} -> "
                              f"{sum(len(f.body) for f in chosen)} bytes")
                print("  segments      " + " ".join(C.METHOD_LETTERS[f.method] for f in segs))
        except TzipError as e:
            say(f"{name}: {e}")
            status = 1
    raise typer.Exit(status)


COMMANDS = {"compress", "decompress", "info"}


def version() -> str:
    """The version, the default model's file and id, and the engine that runs it."""
    from tzip import __version__
    from tzip.engine import library
    from tzip.engine.registry import DEFAULT_MODEL, get_model

    try:
        model = f"default model {os.environ.get('TZIP_MODEL') or DEFAULT_MODEL} (id {get_model(None).model_id})"
    except TzipError as e:
        model = str(e)
    engine = f"C engine ({library.level()})" if library.available() else "PyTorch engine"
    return f"tzip {__version__}; {model}; {engine}"


def main() -> None:
    """Entry point: `tzip FILE` and `tzip -d FILE` work like gzip; subcommands too."""
    argv = sys.argv[1:]
    if argv[:1] in (["--version"], ["-V"]):
        print(version())
        sys.exit(0)
    if not argv or argv[0] not in COMMANDS | {"-h", "--help"}:
        argv = ["compress", *argv]
    try:
        app(argv, prog_name="tzip", standalone_mode=True)
    except BrokenPipeError:
        sys.exit(1)


if __name__ == "__main__":
    main()
