"""The library API, shaped like CPython's lzma module.

`compress`/`decompress` for bytes; `TzipCompressor`/`TzipDecompressor` for incremental use
(bounded memory: input is cut into segments and coded in batches); `TzipFile`/`open` for files.
"""

from __future__ import annotations

import builtins
import io
import os
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate
from typing import BinaryIO

import numpy as np
import zstandard

from tzip.codec import floor, x86
from tzip.codec.chain import CHAINED_BY_DEFAULT, Chain
from tzip.codec.decoder import decode_segments
from tzip.codec.encoder import PIECE_ROWS, SEGMENT_WAYS, chain_way
from tzip.codec.pipeline import fits, piece_bounds, state_bytes
from tzip.codec.rangecoder import CoderError, SymbolEncoder
from tzip.codec.workers import SegmentCoder
from tzip.engine.base import Model
from tzip.engine.registry import get_model, model_by_id, on_device
from tzip.errors import TzipError
from tzip.format import container as C
from tzip.format.detect import (
    DETECT_BYTES,
    Split,
    detect,
    from_model_order,
    looks_like_text,
    pcm16_channels,
    to_model_order,
)
from tzip.format.layout import AUDIO, BINARY, IMAGE, MODALITY_NAMES, TEXT, Modality
from tzip.format.methods import CHAINABLE, method
from tzip.format.methods import DEFAULT as DEFAULT_METHODS
from tzip.format.methods import METHODS as ALL_METHODS
from tzip.format.raw import candidates as headerless_candidates
from tzip.format.transcode import byte_exact_form, from_intermediate, to_intermediate
from tzip.stages.hints import model_hints

# Default segment sizes (measured in docs/SPEED.md). A segment restarts the network's context,
# and, unless the stream chains, what the adaptive stages learnt, so larger is smaller output;
# smaller segments decode side by side on more cores and keep compression's per-segment
# frequency arrays (1 KB a byte) small. Images take at least IMAGE_ROWS rows, since a segment's
# first row has no row above and its pixel model starts cold; audio's sample filters converge
# over thousands of samples; text chains its segments, so its size mostly sets memory.
SEGMENT_BY_MODALITY = {TEXT: 256 * 1024, IMAGE: 64 * 1024, AUDIO: 128 * 1024, BINARY: 64 * 1024}
IMAGE_ROWS = 256  # an image's default segment holds at least this many rows...
IMAGE_SEGMENT_CEILING = 256 * 1024  # ...where that stays under this many bytes
DEFAULT_SEGMENT = None  # None: the modality's size from SEGMENT_BY_MODALITY
BATCH_BYTES = 4 << 20  # range-coded segments are decoded together in batches of up to this many bytes...
BATCH_STATE_BYTES = 160 << 20  # ...whose stages hold about this much at most (pipeline.state_bytes)
ENCODE_BATCH_BYTES = 1 << 19  # ...and encoded in batches of this many
CHAINED_BATCH_BYTES = 4 << 20  # a chained stream's (its passes overlap its stages within a batch)
# A chain's stages take their rows this many at a time, the front stages on one thread ahead of the
# last stage on another (Chain.scan_front and scan_back with the network, up to a piece of rows
# ahead; Chain.code's two halves without, up to classical.ROWS_AHEAD of these): a pipeline keeps
# both cores busy where one scan left one idle.
SCAN_ROWS = 1 << 9
# A chain's first bytes are coded both with the network and without it (the classical method) and
# the chain carries on the smaller way: a network that has not learnt machine code or bytecode can
# cost the bit mixer more than it gives (the Java classes of the binary bench set code 12 % larger
# with it), and text that is not prose can code smaller with the binary contexts alone (a PDF's
# pages 4.4 %, a build log 8.3 %), while on prose and most logs and tables the network gains. The
# trial's chains' states (two or three) are alive meanwhile; 256 KiB decides as 1 MiB did on every
# file of the binary bench set, at a quarter of the network's passes.
TRIAL_BYTES = 1 << 18
# A trial's way with the network that is behind the smallest by more than TRIAL_MARGIN after a
# segment stops there: the text contexts on an executable (nasm's first 64 KiB: 48 % larger than
# the binary contexts) never come back, and their scan is as costly as the chain's own. On the
# binary bench set no trial's choice changes (the jinja2 tar's text contexts, ahead at 64 KiB, go
# on). The classical way (cheap, and the floor) always runs to the trial's end.
TRIAL_MARGIN = 0.05
# After the trial, every CONTEST_EVERY-th segment of a chain is coded both ways, with the network and
# without, each from a fork of the chain's state (Chain.fork); the smaller is kept and its way taken
# by the segments after it. A network that gains over a file's first bytes can lose over its later
# ones (an executable's tail of tables: nasm's last 0.9 MB code 12 % larger with it), and the trial
# alone would keep it. Every 8th segment codes the binary bench set smaller than every 4th (nasm
# 220,784 bytes against 222,614, classical-only 224,392; the Java class tar 198,323 against
# 198,424) and the tar 1.3 times as fast: a contest's rival costs a second coding of its segment
# (docs/ABLATIONS.md).
CONTEST_EVERY = 8
# A text chain whose first segment is shorter than SHORT_TEXT also tries method 8 beside method 14
# (_trial_ways). Texts of n bytes from the bench set's four (each from byte 50,000), method 14
# against method 8: 8 KiB +0.75 %, 16 KiB +0.43 %, 32 KiB +0.14 %, 64 KiB -0.12 %, 128 KiB -0.28 %.
SHORT_TEXT = 1 << 16
# A segment of a binary chain that looks like text is probed both ways over its first piece, the
# probe's stages warmed on the chain's bytes just before it (_text_contexts_win).
PROBE_WARMUP = 1 << 16
# A stream detected as text or binary whose bytes look like headerless pixels or samples
# (format/raw.py) codes its first bytes with each layout they may have and the detected one, and
# keeps the smallest: the guesses are cheap statistics, the trial is what decides.
LAYOUT_TRIAL_BYTES = 1 << 14
READ_SIZE = 1 << 16  # bytes read from a .tz file at a time, and TzipFile's buffer
METHODS = DEFAULT_METHODS  # what the encoder chooses among unless told (format.methods)
METHOD_OF = {m.name: m.id for m in ALL_METHODS}
TRANSCODED_FROM = (*(t for t in C.TRANSCODES.values() if t), *C.TAR_TRANSCODES)


def default_segment(sp: Split) -> int:
    """The segment size used where none is asked for: the modality's, or IMAGE_ROWS rows of an image."""
    size = SEGMENT_BY_MODALITY[sp.layout.modality]
    if sp.layout.modality == IMAGE:
        size = max(size, min(IMAGE_ROWS * sp.unit(), IMAGE_SEGMENT_CEILING))
    return size


class TzipCompressor:
    """Incremental compressor: `compress(data)` returns what is ready, `flush()` ends the stream."""

    def __init__(self, modality: str | None = None, *, segment_size: int | None = DEFAULT_SEGMENT,
                 model: str | os.PathLike | Model | None = None,
                 methods: tuple[str, ...] = METHODS, transcoded_from: str | None = None,
                 workers: int = 1, device: str = "cpu", chain: bool | None = None):
        """modality: text, image, audio or binary, instead of content detection.
        methods: the coding methods each segment may use (format/methods.py; the smallest output
        wins): "neural" is the network alone, "match" adds the match model, "context" the
        context counts, "pixels" (images), "samples" (16-bit audio) and "bits" (text and binary)
        a last, layout-specific stage; "classical" is the bit mixer with binary contexts and no
        network, "sparse" the same with the network, "bits-net" the bits stage also given the
        network's own row (the three for chains only); "stored" and "zstd"
        skip the network; "lzma" codes a block of segments with LZMA2 where that is smaller
        (codec/floor.py).
        transcoded_from: "png" or "flac" where the input is already that file's pixels or
        samples as PNM or WAV (format/transcode.py; `compress(transcode=True)` does it);
        "deflate" where it is a file with its zlib streams expanded (format/deflate.py), "tar"
        where it is a tar archive with its headers gathered (format/tar.py), "tar+deflate" both
        (`compress` does it where there are any).
        workers: processes coding segments in parallel (0: one per core); device: cpu, cuda (the
        Triton kernels) or auto. The output never depends on either. chain: whether the adaptive
        stages carry on from segment to segment (codec/chain.py; None: where that is the
        modality's default, text); chained segments decode one after another, on one core."""
        if modality is not None:
            modality = MODALITY_NAMES[Modality.named(modality)]
        if transcoded_from not in (None, *TRANSCODED_FROM):
            raise ValueError(f"transcoded_from must be None or one of {', '.join(TRANSCODED_FROM)}")
        unknown = set(methods) - set(C.METHOD_NAMES.values())
        if unknown or not methods:
            raise ValueError(f"methods must be a non-empty subset of {sorted(C.METHOD_NAMES.values())}")
        if segment_size is not None and not 256 <= segment_size <= C.MAX_SEGMENT:
            raise ValueError(f"segment_size must be between 256 and {C.MAX_SEGMENT}")
        self.model = on_device(model if isinstance(model, Model) else get_model(model), device)
        self.coder = SegmentCoder(self.model, workers)
        self.modality, self.methods, self.transcoded_from = modality, set(methods), transcoded_from
        self.segment_request = segment_size
        self.head = bytearray()
        self.split = None
        self.pos = 0  # bytes of input routed so far (after detection)
        self.pending = bytearray()  # payload bytes not yet a full segment
        self.batch: list[bytes] = []  # full segments (modelling order) awaiting coding
        self.crc, self.total, self.done = 0, 0, False
        self.zstd = zstandard.ZstdCompressor(level=19)
        self.stats: list[tuple[int, int, int]] = []  # (method, raw, coded) per segment
        self.chain_request, self.chain_way, self.chain = chain, None, None
        self.tried_way: str | None = None  # the way the last trial kept (TRIAL_BYTES)
        self.block: list[tuple[bytes, bytes]] = []  # (segment in modelling order, its frame) not yet written
        self.x86, self.coded_pos = False, 0  # the x86 filter (codec/x86.py); payload bytes coded so far
        self.forced_split: Split | None = None  # a layout trial's: the split to code with, undetected
        self.whole: bytes | None = None  # the whole stream, where a layout trial coded all of the input

    def compress(self, data: bytes) -> bytes:
        if self.done:
            raise ValueError("compressor was already flushed")
        data = bytes(data)
        self.crc = zlib.crc32(data, self.crc)
        self.total += len(data)
        if self.split is None:
            self.head += data
            if len(self.head) < DETECT_BYTES:
                return b""
            return self._start()
        return self._route(data)

    def flush(self) -> bytes:
        if self.done:
            raise ValueError("compressor was already flushed")
        out = self._start(final=True) if self.split is None else b""
        if self.whole is not None:
            self.done = True
            return self.whole
        out += self._end_payload()
        self.done = True
        return out + C.end_frame(self.total, self.crc)

    # -- internals -----------------------------------------------------------------------
    def _start(self, final: bool = False) -> bytes:
        self.split = sp = self.forced_split or self._headerless(detect(bytes(self.head), self.modality), final)
        if self.whole is not None:
            return b""
        unit = sp.unit()
        fits = unit <= C.MAX_SEGMENT
        request = self.segment_request or default_segment(sp)
        self.segment_size = max(unit, request // unit * unit) if fits else request
        self.block_size = floor.block_size(sp.layout.modality)
        self.predictor = self.model.cfg.audio_predictor if sp.swapped and pcm16_channels(sp.layout) else 0
        if sp.layout.modality in CHAINED_BY_DEFAULT if self.chain_request is None else self.chain_request:
            self.chain_way = chain_way(self.methods, sp.layout)
        self.x86 = sp.layout.modality == BINARY and sp.prefix_len == 0 and x86.is_x86(bytes(self.head))
        header = C.Header(self.model.model_id, sp.layout, self.segment_size, sp.swapped, self.transcoded_from,
                          self.predictor, self.chain_way is not None, self.x86)
        head, self.head = bytes(self.head), bytearray()
        return header.pack() + self._route(head)

    def _headerless(self, detected: Split, final: bool) -> Split:
        """The split to code with: `detected`, or a headerless image's or recording's layout where
        the bytes look like one (format/raw.py) and a trial over the first LAYOUT_TRIAL_BYTES codes
        them smaller with it. Where the trial coded the whole input (`final`: no more will come),
        its stream is the output (self.whole)."""
        if detected.kind not in ("text", "binary") or self.transcoded_from is not None:
            return detected
        samples = [bytes(self.head[:LAYOUT_TRIAL_BYTES])]
        if len(self.head) >= 2 * LAYOUT_TRIAL_BYTES:  # a longer stream: its head's last bytes too
            samples.append(bytes(self.head[-LAYOUT_TRIAL_BYTES:]))
        options = headerless_candidates(samples[0], self.modality)
        if not options:
            return detected
        trials = []  # (total size, sizes per sample, the first sample's stream, its compressor)
        for split in [detected, *options]:
            sizes, first = [], None
            for sample in samples:
                trial = TzipCompressor(self.modality, segment_size=self.segment_request, model=self.model,
                                       methods=tuple(sorted(self.methods)), chain=self.chain_request)
                trial.forced_split = split
                stream = trial.compress(sample) + trial.flush()
                sizes.append(len(stream))
                first = first or (stream, trial)
            trials.append((sum(sizes), sizes, *first))
        _, sizes, stream, best = min(trials, key=lambda t: t[0])  # ties keep the detected layout
        if any(size >= base for size, base in zip(sizes, trials[0][1])):  # it must win every sample
            return detected
        if final and len(samples[0]) == len(self.head):
            self.whole, self.stats, self.tried_way = stream, best.stats, best.tried_way
        return best.split

    def _route(self, data: bytes) -> bytes:
        sp, out = self.split, []
        start, end = sp.prefix_len, sp.prefix_len + sp.payload_len
        while data:
            if self.pos < start:
                n = min(len(data), start - self.pos)
                out.append(C.verbatim_frame(data[:n]))
            elif self.pos < end:
                n = min(len(data), end - self.pos)
                self.pending += data[:n]
                out.append(self._cut_segments())
            else:
                out.append(self._end_payload())
                n = min(len(data), C.MAX_VERBATIM)
                out.append(C.verbatim_frame(data[:n]))
            self.pos += n
            data = data[n:]
        return b"".join(out)

    def _cut_segments(self) -> bytes:
        out = []
        while len(self.pending) >= self.segment_size:
            self.batch.append(bytes(self.pending[: self.segment_size]))
            del self.pending[: self.segment_size]
            if sum(map(len, self.batch)) >= (ENCODE_BATCH_BYTES if self.chain_way is None else CHAINED_BATCH_BYTES):
                out.append(self._code_batch())
        return b"".join(out)

    def _end_payload(self) -> bytes:
        if self.pending:
            self.batch.append(bytes(self.pending))
            self.pending.clear()
        return self._code_batch() + self._close_block()

    def _code_batch(self) -> bytes:
        """The batch's segments coded; their frames join the open block, which is written once full."""
        if not self.batch:
            return b""
        sp, channels = self.split, pcm16_channels(self.split.layout)
        raws = [to_model_order(s, sp.swapped, self.predictor, channels) for s in self.batch]
        if self.x86:  # each segment from its own payload position
            starts = accumulate(map(len, raws[:-1]), initial=self.coded_pos)
            raws = [x86.apply(r, base) for r, base in zip(raws, starts)]
        self.coded_pos += sum(map(len, raws))
        self.batch = []
        # an lzma frame holds at most MAX_SEGMENT bytes, and a chained block is settled before the
        # chain codes on from it
        out = self._close_block() if sum(len(r) for r, _ in self.block) + sum(map(len, raws)) > C.MAX_SEGMENT else b""
        if self.chain_way is not None:
            frames = self._code_chained(raws)
        else:
            ways = tuple(w for w in SEGMENT_WAYS if w in self.methods
                         and (method(w).network or fits(w, self.split.layout)))
            network = self.coder.encode(raws, self.split.layout, ways) if ways else [None] * len(raws)
            frames = [self._frame(raw, [] if nc is None else [(METHOD_OF[nc[0]], nc[1])])
                      for raw, nc in zip(raws, network)]
        self.block += zip(raws, frames)
        return out + (self._close_block() if sum(len(r) for r, _ in self.block) >= self.block_size else b"")

    def _close_block(self) -> bytes:
        """The open block's frames, or one lzma frame of its bytes where that is smaller (the floor)."""
        block, self.block = self.block, []
        frames = b"".join(f for _, f in block)
        if "lzma" not in self.methods or not block:
            return frames
        raw = b"".join(r for r, _ in block)
        if len(raw) > C.MAX_SEGMENT:  # one batch of huge segments: no frame can hold it
            return frames
        body = floor.smallest(raw, self.split.layout.modality == BINARY)
        if C.SEGMENT.size + 1 + len(body) >= len(frames):
            return frames
        del self.stats[len(self.stats) - len(block):]
        self.stats.append((C.LZMA, len(raw), len(body)))
        self.chain = None  # the decoder never saw the block's segments on a chain
        return C.segment_frame(C.LZMA, raw, body)

    def _choose(self, raw: bytes, coded: list[tuple[int, bytes]]) -> tuple[int, bytes]:
        """(method, body): the smallest of `coded` (method, bytes) and stored and zstd where allowed."""
        options = [(C.STORED, raw)] if "stored" in self.methods else []
        if "zstd" in self.methods:
            options.append((C.ZSTD, self.zstd.compress(raw)))
        if not options and not coded:  # a classical body that would not fit its frame: stored, always
            options.append((C.STORED, raw))
        return min(options + coded, key=lambda o: (len(o[1]), -o[0]))

    def _frame(self, raw: bytes, coded: list[tuple[int, bytes]]) -> bytes:
        """The segment's frame by the smallest of `coded` (method, bytes) and stored and zstd where allowed."""
        method_id, body = self._choose(raw, coded)
        self.stats.append((method_id, len(raw), len(body)))
        return C.segment_frame(method_id, raw, body)

    def _trials_classical(self) -> bool:
        """Whether a new chain is coded both with and without the network over its first TRIAL_BYTES."""
        return "classical" in self.methods and method(self.chain_way).network

    def _trial_ways(self, first: int) -> list[str]:
        """The ways a new chain's trial codes (`first`: the length of its first segment): the chain's
        way; method 8 beside method 11 (some short or text-like binary chains prefer text's
        contexts), and beside method 14 where the first segment is under SHORT_TEXT (method 14's
        eight times as many first weight sets learn more slowly: 4 KiB texts code 1 % larger with it
        alone, from 64 KiB on it is the smaller, and a third way costs a third of the trial's
        speed); and the classical way."""
        method_8 = "bits" in self.methods and (self.chain_way == "sparse"
                                               or (self.chain_way == "bits-net" and first < SHORT_TEXT))
        return [self.chain_way, *(["bits"] if method_8 else []), "classical"]

    def _offers_text_contexts(self) -> bool:
        """Whether a binary chain (its way method 11) may also code with method 8's text contexts."""
        return self.chain_way == "sparse" and "bits" in self.methods  # chain_way is "sparse" for binary only

    def _switches(self, raw: bytes) -> bool:
        """Whether a segment of a binary chain may run the text contexts (method 8) in place of the
        chain's way: one that looks like text (a tar's source files) where method 8 is allowed."""
        return self._offers_text_contexts() and looks_like_text(raw)

    def _text_contexts_win(self, x: np.ndarray, freqs: np.ndarray, ways: set[str],
                           before: np.ndarray) -> dict[str, bool]:
        """For each way, whether method 8 codes the start of text-like segment `x` (the rows of
        `freqs`, its first piece) smaller than that way: both from fresh stages warmed on `before`,
        the chain's last PROBE_WARMUP bytes (fed a uniform distribution there, since the network's
        rows of earlier segments are gone). The text contexts win on program sources and lose on
        logs and JSON, which code smaller with binary data's contexts; without the warm-up the
        network's head start on a cold segment calls nearly every text method 8's
        (docs/ABLATIONS.md "Tar archives")."""
        n, m, sizes = min(len(x), len(freqs)), len(before), {}
        for way in ways | {"bits"}:
            probe = Chain(way, self.split.layout, n + m)
            warm = probe.add(before)
            start = probe.add(x[:n])
            if m:  # learnt bit by bit from a uniform distribution (8 of the mixer's nodes a byte, not 255)
                probe.code(warm, m)
            if method(way).network:
                coder = SymbolEncoder()
                coder.add(x[:n], probe.scan(start, freqs[:n].copy()))
                sizes[way] = len(coder.bytes())
            else:
                body = probe.code(start, n)
                sizes[way] = n + 64 if body is None else len(body)
        return {way: sizes["bits"] < sizes[way] for way in ways}

    def _contests(self, chain: Chain | None, ahead: bool = False) -> bool:
        """Whether the segment just added to `chain` is also coded the other way (_other_way): every
        CONTEST_EVERY-th segment that carries a chain on, never a chain's first (a chain that starts
        after a stored or zstd segment takes the way the last contest kept). ahead: whether the next
        segment will be, should it carry on the chain; guessed only for a chain past its first
        segment, since where zstd wins every segment each starts a chain and the pass is wasted."""
        if not CONTEST_EVERY or not self._trials_classical() or chain is None or chain.segments < 2:
            return False
        return (chain.segments - (not ahead)) % CONTEST_EVERY == 0

    def _other_way(self, way: str) -> str:
        """The way a contested segment of a chain coded `way` is also coded (_contests): without the
        network where it has it, and with it where not."""
        return "classical" if method(way).network else self.chain_way

    def _code_chained(self, raws: list[bytes]) -> list[bytes]:
        """Segments coded in order on the chain, each with the chain's way, its stages carrying on
        from the segment before, a piece of rows at a time (bounded memory). The network's pass
        over the next piece runs on a thread meanwhile (both are C calls that release the GIL), so
        the two share the cores. A stream's first chain, and each after one that reached
        CHAIN_LIMIT, starts as a trial: chains with the network (a binary chain's two bit mixers, or a
        short text's) and without it code its first TRIAL_BYTES, a way with the network stopping where it falls more
        than TRIAL_MARGIN behind, and the smallest one's frames are kept and it carries on; a chain that starts
        after a stored, zstd or lzma segment takes the way the last trial or contest kept (a trial
        per chain would double the stages' work on data where zstd wins most segments). After the
        trial, a contest codes every CONTEST_EVERY-th segment of the chain also the other way, from
        a fork of its state, and the chain carries on with the smaller (`_contests`). In a binary
        chain a segment that looks like text runs the text contexts (method 8) where a probe finds
        them smaller than the chain's way (`_switches`, `_text_contexts_win`)."""
        layout, out = self.split.layout, []
        symbols = [np.frombuffer(raw, dtype=np.uint8) for raw in raws]
        as_text = [self._switches(raw) for raw in raws]
        pieces = [(i, t0, n) for i, x in enumerate(symbols) for t0, n in piece_bounds(len(x), PIECE_ROWS)]

        hints: dict[int, np.ndarray | None] = {}  # a segment's, for all its pieces

        def network(piece: tuple[int, int, int]) -> np.ndarray:
            i, t0, n = piece
            if i not in hints:
                hints.clear()
                hints[i] = model_hints(self.model, symbols[i], layout)
            return np.ascontiguousarray(self.model.segment_frequencies(symbols[i], layout, rows=(t0, n),
                                                                       hints=hints[i]), dtype=np.int32)

        trial: list[_Trial] | None = None  # the two ways of a new chain, while its trial lasts
        tried = 0  # the bytes the trial has coded

        def segment_needs_network(j: int, runs: list[_Trial]) -> bool:
            """Whether segment j, the next, may run a way with the network (its first piece's rows are
            computed ahead, beside the segment before): a trial still holds such a way; no chain
            carries on, so its way is decided only when it starts; its probe for the text contexts
            reads the network's rows; the chain's way has the network; or a contest will code it
            both ways. Otherwise it carries on a chain without the network, which needs no pass."""
            return ((trial is not None and any(method(r.way).network for r in trial))
                    or self.chain is None or as_text[j]
                    or method(self.tried_way or self.chain_way).network
                    or (trial is None and self._contests(runs[0].chain, ahead=True)))
        with (ThreadPoolExecutor(1) as ahead, ThreadPoolExecutor(1) as beside, ThreadPoolExecutor(1) as front,
              ThreadPoolExecutor(1) as rowing):
            pending = [ahead.submit(network, pieces[0])] if pieces else []
            k = 0  # the next piece to take
            for i, (raw, x) in enumerate(zip(raws, symbols)):
                if trial is None and (self.chain is None or not self.chain.continues(self.chain.way)):
                    full = self.chain is not None  # it ended at CHAIN_LIMIT, not at a stored, zstd or lzma segment
                    self.chain = None  # the old chain's state is freed before the new one is made
                    if self._trials_classical() and (self.tried_way is None or full):
                        trial, tried = [_Trial(way) for way in self._trial_ways(len(raw))], 0
                    else:
                        self.chain = Chain(self.tried_way or self.chain_way, layout, self.segment_size)
                runs = trial or [_Trial(self.tried_way or self.chain_way, self.chain)]
                if as_text[i]:  # the probe needs the segment's first rows of the network: here or on their way
                    if pending[-1].result() is None:
                        pending[-1] = ahead.submit(network, pieces[k])
                    known = next((r.chain for r in runs if r.chain is not None), None)
                    before = known.history[0, max(0, known.length - PROBE_WARMUP) : known.length] if known else x[:0]
                    text_wins = self._text_contexts_win(x, pending[-1].result(), {run.way for run in runs}, before)
                for run in runs:
                    run.segment_way = "bits" if as_text[i] and text_wins[run.way] else run.way
                    if run.chain is None or not run.chain.continues(run.segment_way):  # a trial's way restarts
                        run.chain = None
                        run.chain = Chain(run.segment_way, layout, self.segment_size)
                    else:
                        run.chain.begin(run.segment_way)
                    run.start = run.chain.add(x)
                # a text segment that switched to method 8 is not contested: its probe chose its way
                if trial is None and runs[0].segment_way == runs[0].way and self._contests(runs[0].chain):
                    other = self._other_way(runs[0].way)
                    runs[0].rival = _Trial(other, runs[0].chain.fork())
                    runs[0].rival.start = runs[0].start
                    runs[0].rival.chain.begin(other)
                coding = [*runs, *(run.rival for run in runs if run.rival is not None)]
                # a way without the network codes the whole segment on a thread of its own beside the
                # network's way (C calls that release the GIL), its stages before the bit mixer a few
                # rows ahead on another; the network's way takes its rows a piece at a time
                alone = {id(run): beside.submit(run.chain.code, run.start, len(x), rowing, SCAN_ROWS)
                         for run in coding if not method(run.segment_way).network}
                networked = [(run, SymbolEncoder()) for run in coding if method(run.segment_way).network]
                while k < len(pieces) and pieces[k][0] == i:
                    _, t0, n = pieces[k]
                    # 1 KB a byte: this piece's and the next one's are alive (and, for method 14, a copy in _scan_ways)
                    freqs = pending.pop().result()
                    if freqs is None and networked:
                        freqs = network(pieces[k])  # a chain without the network ended: a new trial
                    k += 1
                    if k < len(pieces):  # a chain without the network that carries on needs no pass
                        j = pieces[k][0]
                        wanted = bool(networked) if j == i else segment_needs_network(j, runs)
                        pending.append(ahead.submit(network, pieces[k]) if wanted else ahead.submit(lambda: None))
                    if networked:
                        _scan_ways(front, networked, x, t0, freqs)
                    del freqs
                bodies = {id(run): coder.bytes() for run, coder in networked}
                bodies.update((key, future.result()) for key, future in alone.items())
                del coding, alone, networked  # a losing rival's stages are freed with its chain, below
                for run in runs:
                    coded = [(r, METHOD_OF[r.segment_way], bodies[id(r)]) for r in (run, run.rival) if r is not None]
                    method_id, body = self._choose(raw, [(way, body) for _, way, body in coded if body is not None])
                    run.frames.append(C.segment_frame(method_id, raw, body))
                    run.stats.append((method_id, len(raw), len(body)))
                    kept = next((r for r, way, _ in coded if way == method_id), None)
                    run.chain = kept.chain if kept is not None else None  # another method: the chain ends
                    if kept is not None and kept is run.rival:
                        self.tried_way = kept.way  # the chain's segments take it until the next contest
                    run.rival = None
                tried += len(raw)
                if trial is not None and tried < TRIAL_BYTES and i < len(raws) - 1:
                    # the trial goes on, without a way with the network already far behind
                    smallest = min(r.size for r in trial)
                    trial[:] = [r for r in trial
                                if not method(r.way).network or r.size <= smallest * (1 + TRIAL_MARGIN)]
                    continue
                # the trial's smaller way (the network's on a tie), or the one way
                best = min(runs, key=lambda r: (r.size, not method(r.way).network))
                out += best.frames
                self.stats += best.stats
                if trial is not None:
                    self.tried_way = best.way
                self.chain, trial = best.chain, None
        return out


def _scan_ways(front: ThreadPoolExecutor, networked: list, x: np.ndarray, t0: int, freqs: np.ndarray) -> None:
    """Rows t0.. of the segment being coded (x its bytes; `freqs` the network's, for every way) through
    each (run, coder) of `networked`: rewritten by the run's stages and range-coded. Each way's stages
    rewrite its rows in place (all but the last way get a copy), SCAN_ROWS at a time: all but the
    last stage on the `front` thread (one worker, so in order), as far ahead of the last stage and
    the coder here as they run. A last stage that reads the network's rows (method 14's) gets a copy
    of them as they came."""
    net = freqs.copy() if any(run.chain.reads_network for run, _ in networked) else None
    rows = [freqs.copy() for _ in networked[1:]] + [freqs]
    subs = list(piece_bounds(len(freqs), SCAN_ROWS))
    fronts = [[front.submit(run.chain.scan_front, run.start + t0 + s0, r[s0 : s0 + m]) for s0, m in subs]
              for (run, _), r in zip(networked, rows)]
    for (run, coder), r, done in zip(networked, rows, fronts):
        for (s0, m), job in zip(subs, done):
            job.result()
            at = t0 + s0
            coder.add(x[at : at + m], run.chain.scan_back(run.start + at, r[s0 : s0 + m],
                                                          None if net is None else net[s0 : s0 + m]))


class _Trial:
    """One way of coding a run of chained segments: its chain, and the frames it has written."""

    def __init__(self, way: str, chain: Chain | None = None):
        self.way, self.chain = way, chain
        self.start = 0  # where the segment being coded starts in the chain's history
        self.segment_way = way  # the way of the segment being coded: the run's, or method 8 for text
        self.rival: _Trial | None = None  # the segment coded the other way from a fork of the chain
        self.frames: list[bytes] = []
        self.stats: list[tuple[int, int, int]] = []

    @property
    def size(self) -> int:
        """The bytes of the frames written so far."""
        return sum(map(len, self.frames))


class TzipDecompressor:
    """Incremental decompressor with lzma's `eof`, `unused_data` and `needs_input`."""

    def __init__(self, model: str | os.PathLike | Model | None = None, workers: int = 1, device: str = "cpu"):
        self.model_spec, self.workers, self.device = model, workers, device
        self.buf = bytearray()
        self.header: C.Header | None = None
        self.queue: list[C.Frame] = []
        self.out = bytearray()
        self.crc, self.total = 0, 0
        self.ended, self.unused_data, self.needs_input = False, b"", True
        self.frames: list[tuple[str, int, int]] = []  # (kind, raw, coded) for `tzip info`
        self.chain: Chain | None = None  # a chained stream's current chain
        self.payload_pos = 0  # payload bytes decoded so far (where the x86 filter's segments start)

    @property
    def eof(self) -> bool:
        """The end frame was reached and every decompressed byte has been returned."""
        return self.ended and not self.out

    @property
    def transcode(self) -> str | None:
        return self.header.transcode if self.header else None

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if self.eof:
            raise EOFError("end of stream already reached")
        self.buf += data
        self._process()
        return self._take(max_length)

    def _take(self, max_length: int) -> bytes:
        n = len(self.out) if max_length < 0 else min(max_length, len(self.out))
        chunk = bytes(self.out[:n])
        del self.out[:n]
        self.needs_input = not self.out and not self.ended
        return chunk

    def _model(self) -> Model:
        spec = self.model_spec
        m = spec if isinstance(spec, Model) else (get_model(spec) if spec else model_by_id(self.header.model_id))
        m = on_device(m, self.device)
        if m.model_id != self.header.model_id:
            raise TzipError(f"this stream needs model {self.header.model_id}, but the given model is {m.model_id}")
        return m

    def _process(self) -> None:
        if self.header is None:
            if len(self.buf) < C.HEADER_SIZE:
                C.check_prefix(bytes(self.buf))  # a wrong magic or version fails at once
                return
            self.header = C.Header.unpack(bytes(self.buf[: C.HEADER_SIZE]))
            del self.buf[: C.HEADER_SIZE]
        pos = 0
        while not self.ended:
            got = C.read_frame(self.buf, pos, self.header.segment_size)
            if got is None:
                break
            frame, pos = got
            if frame.kind == C.FRAME_SEGMENT:
                if self._batch_full_without(frame):
                    self._drain()
                self.queue.append(frame)
                self.frames.append((C.METHOD_NAMES[frame.method], frame.raw_len, len(frame.body)))
                if self.header.chained:
                    self._drain()
                continue
            self._drain()
            if frame.kind == C.FRAME_VERBATIM:
                self.frames.append(("verbatim", frame.raw_len, frame.raw_len))
                self._emit(frame.body)
            else:
                if frame.total != self.total or frame.crc != self.crc:
                    raise TzipError("corrupted tzip stream (checksum of the original does not match)")
                self.ended = True
                self.unused_data = bytes(self.buf[pos:])
        del self.buf[:pos]

    def _batch_full_without(self, frame: C.Frame) -> bool:
        """Whether the queued range-coded segments must decode before `frame` joins them: together
        they would exceed BATCH_BYTES or hold more than BATCH_STATE_BYTES of stage state."""
        coded = [f for f in self.queue if f.method in C.CODED]
        if not coded or frame.method not in C.CODED:
            return False
        size = sum(f.raw_len for f in coded) + frame.raw_len
        state = sum(state_bytes(C.METHOD_NAMES[f.method], f.raw_len) for f in [*coded, frame])
        return size > BATCH_BYTES or state > BATCH_STATE_BYTES

    def _decode_chained(self, frame: C.Frame) -> bytes:
        """One range-coded segment of a chained stream: it carries on the current chain if its way
        continues it (chain.Chain.continues), else starts a new chain, or ends it (the network alone)."""
        way, layout = C.METHOD_NAMES[frame.method], self.header.layout
        if way not in CHAINABLE:
            self.chain = None
            return decode_segments(self._model(), [frame.body], [frame.raw_len], layout, [way])[0]
        if self.chain is None or not self.chain.continues(way):
            self.chain = None
            self.chain = Chain(way, layout, self.header.segment_size)
        return decode_segments(self._model(), [frame.body], [frame.raw_len], layout, [way], chain=self.chain)[0]

    def _emit(self, data: bytes) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.total += len(data)
        self.out += data

    def _drain(self) -> None:
        if not self.queue:
            return
        network = [f for f in self.queue if f.method in C.CODED]  # range-coded: neural, match, context
        decoded = {}
        if network:
            try:
                if self.header.chained:  # one segment at a time, in order
                    raws = [self._decode_chained(f) for f in network]
                else:
                    raws = SegmentCoder(self._model(), self.workers).decode(
                        [f.body for f in network], [f.raw_len for f in network], self.header.layout,
                        [C.METHOD_NAMES[f.method] for f in network])
            except (CoderError, ValueError, RuntimeError) as e:
                raise TzipError(f"corrupted tzip stream (range decoder failed: {e})") from None
            decoded = {id(f): r for f, r in zip(network, raws)}
        if self.header.chained and not network:
            self.chain = None  # a stored, zstd or lzma segment ends the chain
        h = self.header
        for f in self.queue:
            if f.method == C.STORED:
                raw = f.body
            elif f.method == C.LZMA:
                raw = floor.decode(f.body, f.raw_len)
            elif f.method == C.ZSTD:
                try:  # a frame that declares another size is refused before zstd allocates for it
                    if zstandard.frame_content_size(f.body) not in (f.raw_len, -1):
                        raise zstandard.ZstdError("its frame declares another size than the segment's")
                    raw = zstandard.ZstdDecompressor().decompress(f.body, max_output_size=f.raw_len)
                except zstandard.ZstdError as e:
                    raise TzipError(f"corrupted tzip stream (zstd segment: {e})") from None
            else:
                raw = decoded[id(f)]
            if len(raw) != f.raw_len or zlib.crc32(raw) != f.crc:
                raise TzipError("corrupted tzip stream (segment checksum mismatch)")
            for i in range(0, len(raw), h.segment_size):  # an lzma segment holds several
                piece = raw[i : i + h.segment_size]
                if h.x86:
                    piece = x86.apply(piece, self.payload_pos, decode=True)
                self.payload_pos += len(piece)
                self._emit(from_model_order(piece, h.swapped, h.predictor, pcm16_channels(h.layout)))
        self.queue = []


def compress(data: bytes, modality: str | None = None, *, segment_size: int | None = DEFAULT_SEGMENT,
             model: str | os.PathLike | Model | None = None, transcode: bool = False,
             methods: tuple[str, ...] = METHODS, workers: int = 1,
             device: str = "cpu", chain: bool | None = None, expand: bool = True) -> bytes:
    """Compress bytes to a complete .tz stream (workers: processes, 0 = one per core; chain: see
    TzipCompressor). expand: a tar archive's headers are gathered before its members' contents
    (format/tar.py) and zlib streams inside a text or binary input are inflated where zlib rebuilds
    them exactly (format/deflate.py); transcode: a PNG or FLAC as its pixels or samples."""
    tag, got = None, None
    if transcode:
        got = to_intermediate(bytes(data))
    if got is None and expand:
        got = byte_exact_form(bytes(data), modality)
    if got is not None:
        data, tag = got
    c = TzipCompressor(modality, segment_size=segment_size, model=model, methods=methods, transcoded_from=tag,
                       workers=workers,
                       device=device, chain=chain)
    return c.compress(data) + c.flush()


def stream_decompress(read: Callable[[], bytes], model: str | os.PathLike | Model | None = None,
                      empty_ok: bool = False, workers: int = 1, device: str = "cpu") -> Iterator[bytes]:
    """Decompressed bytes of every concatenated stream that `read()` supplies (b"" at its end).

    Output comes out as it is decoded (bounded memory), except that a transcoded stream is
    rebuilt into its PNG/FLAC file as a whole.
    """
    rest = read()
    if not rest and not empty_ok:
        raise TzipError("not a tzip stream (empty input)")
    while rest:
        d, whole = TzipDecompressor(model, workers, device), []
        while True:
            out = d.decompress(rest)
            if d.transcode:
                whole.append(out)
            elif out:
                yield out
            if d.eof:
                break
            rest = read()
            if not rest:
                raise TzipError("truncated tzip stream (ended before its end frame)")
        if d.transcode:
            yield from_intermediate(b"".join(whole), d.transcode)
        rest = d.unused_data or read()


def decompress(data: bytes, *, model: str | os.PathLike | Model | None = None, workers: int = 1,
               device: str = "cpu") -> bytes:
    """Decompress one or more concatenated .tz streams (workers: processes, 0 = one per core)."""
    chunks = iter([bytes(data)])
    return b"".join(stream_decompress(lambda: next(chunks, b""), model, workers=workers, device=device))


class _DecompressReader(io.RawIOBase):
    """The decompressed bytes of every stream in `fp`, as a raw stream for io.BufferedReader (the
    role CPython's _compression.DecompressReader plays for lzma.LZMAFile)."""

    def __init__(self, fp: BinaryIO, opts: dict):
        self._pieces = stream_decompress(lambda: fp.read(READ_SIZE), opts.get("model"), empty_ok=True,
                                         workers=opts.get("workers", 1), device=opts.get("device", "cpu"))
        self._piece, self._pos = memoryview(b""), 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._pos == len(self._piece):
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._piece, self._pos = memoryview(piece), 0
        with memoryview(b) as view, view.cast("B") as out:
            n = min(len(out), len(self._piece) - self._pos)
            out[:n] = self._piece[self._pos : self._pos + n]
        self._pos += n
        return n


class TzipFile(io.BufferedIOBase):
    """A file object that compresses on write or decompresses on read (like lzma.LZMAFile)."""

    def __init__(self, filename: str | os.PathLike | BinaryIO, mode: str = "rb", **opts):
        mode = mode.replace("b", "")
        if mode not in ("r", "w", "x", "a"):
            raise ValueError(f"invalid mode {mode!r}")
        self._own = isinstance(filename, (str, bytes, os.PathLike))
        self._fp = builtins.open(filename, mode + "b") if self._own else filename
        self._mode = mode
        if mode == "r":
            self._reader = io.BufferedReader(_DecompressReader(self._fp, opts), READ_SIZE)
        else:
            self._comp = TzipCompressor(**opts)
        self._closed = False

    def readable(self) -> bool:
        return self._mode == "r"

    def writable(self) -> bool:
        return self._mode != "r"

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._mode != "r":
                self._fp.write(self._comp.flush())
        finally:
            self._closed = True
            if self._own:
                self._fp.close()

    def write(self, data) -> int:
        if self._mode == "r":
            raise io.UnsupportedOperation("file not open for writing")
        data = bytes(data)
        self._fp.write(self._comp.compress(data))
        return len(data)

    def _read_side(self) -> io.BufferedReader:
        if self._mode != "r":
            raise io.UnsupportedOperation("file not open for reading")
        return self._reader

    def read(self, size: int | None = -1) -> bytes:
        return self._read_side().read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        return self._read_side().read1(size)

    def readinto(self, b) -> int:
        return self._read_side().readinto(b)

    def readline(self, size: int | None = -1) -> bytes:
        return self._read_side().readline(-1 if size is None else size)

    def peek(self, size: int = 0) -> bytes:
        return self._read_side().peek(size)


def open(file, mode: str = "rb", *, encoding=None, errors=None, newline=None, **opts):  # noqa: A001
    """Open a .tz file in binary ('rb', 'wb', 'xb', 'ab') or text ('rt', 'wt', ...) mode."""
    if "t" in mode:
        binary = TzipFile(file, mode.replace("t", ""), **opts)
        return io.TextIOWrapper(binary, encoding, errors, newline)
    return TzipFile(file, mode, **opts)

