"""The bit mixer: method 5's byte distribution refined one bit at a time by context mixing.

The counts stage (counts.py) blends order-1..6 counts into the network's prediction with a
fixed table of trust. Text coders of the PAQ family do better by deciding each byte as eight
binary choices, each predicted by many contexts whose adaptive probabilities a small online
logistic mixer weighs, then refined by adaptive probability maps (APMs). Here that machinery
takes the incoming frequencies f as one more input (their conditional probability of each bit)
and adds what f lacks: the word so far, with the words before it and with the column, and the
byte above in a line-structured text. On the bench texts it codes 7.2 % under f alone.

Each node of the byte's binary tree (c0: a leading 1, then the bits known) mixes, in the
stretched (logit) domain, f's conditional bit probability, ten context slots (orders 1-4 and 6,
the word, word with one and with two words before, word with column, byte above with the last
byte) and a bias. Two weight sets, chosen by the node and by the node with which of the last
three contexts have been seen, each give a prediction; their mean passes two APMs (by node, by
node and the last byte). The coder needs a distribution over 256 bytes, so every node whose
subtree f gives at least 1/256 of its mass is evaluated and the mass split by its probability;
smaller subtrees share their mass as f does. After the byte, the eight nodes on its path learn
(from their evaluation at prediction, where there was one).

Binary data has no lines: there the five text contexts give way to eleven (the byte two back,
the pairs at gaps (2,3), (1,3), (4,8), (3,4), (1,5), the triples (1,2,4), (1,6,7), the word so far
for the strings inside binaries, and the bytes one and two records up, with each other and with
the last byte, once a record length is detected), which see the opcode through its operands and a
record's fixed fields through its varying ones; and each slot keeps its last bits, whose adaptive probability
per context (a history map, as the PAQ family's state maps) is one more input: machine code's
contexts are often deterministic or alternate, which a slot's average adapts to slowly (stage
"sparse", which method 10 uses; on the binary bench set's executables, databases and archives
the first five sparse contexts code 5.4 % smaller than text's, the histories 2.8 %, the next
four 2.1 %, the record's two 1.2 %: 29 % on an executable's relocation and symbol tables).

Integer arithmetic throughout (12-bit probabilities, exact decimal tables), so every machine
computes the same frequencies (docs/DESIGN.md §2). This file is the reference and the fallback;
tzip/native/bits.c computes the same integers fast. Segments coded this way are container
method 8 ("bits", the text set), method 10 ("classical", the sparse set) and method 14
("bits-net": the text set and, as one more input, the network's own row before the other stages
rescaled it; `Net`), offered for text and binary layouts.
"""

from __future__ import annotations

import numpy as np

from tzip.engine.constants import UNIFORM_FREQ
from tzip.engine.library import header, library
from tzip.format.layout import BINARY, TEXT, Layout
from tzip.stages.mixing import STRETCH, normalise, squash, squash_tables
from tzip.stages.protocol import STAGE_KINDS, StateBatch, apply_stage, segment_arrays

SLOT_BITS = 22  # 2^22 words (16 MB) in buckets of 16: a check, then 15 nodes' p (16 bits) << 16 | history << 8 | count
CONTEXTS = 10  # text's set
SPARSE_CONTEXTS = 16  # binary data's set
INPUTS = CONTEXTS + 2  # f's bit probability, the context slots, a bias
SPARSE_INPUTS = 2 * SPARSE_CONTEXTS + 2  # the sparse set adds each slot's bit history's probability
LIMIT = 127  # a slot's count stops here: its probability then moves 1/128.5 of the way per bit
RATE = 6  # mixer learning rate (err * RATE * input >> 14, weights in 1/2^16)
W_START = 8000  # every weight's start but f's (65536: f as it is)
W_MAX = 1 << 24
APM_RATE = 7
EVAL_SHIFT = 8  # nodes with under 1/2^8 of f's mass are not evaluated
COL_MAX = 60
HISTORY_LIMIT = 255  # a history's probability moves at least 1/256.5 of the way per bit
RECORD_MAX = 4096  # the longest record length detected
RECORD_VOTES = 16
CONTEXT_SETS = {name.removeprefix("TZIP_BITS_").lower(): v  # "words", "sparse": tzip.h's enum tzip_bits_contexts
                for name, v in header().enums["tzip_bits_contexts"].items() if name != "TZIP_BITS_CONTEXTS_COUNT"}
WORDS, SPARSE, NET = CONTEXT_SETS["words"], CONTEXT_SETS["sparse"], CONTEXT_SETS["net"]
NET_SETS = 8  # the net set's first weight sets a node: by the network's split of the node, in 8 bands
_STRETCH = STRETCH.tolist()
MASK32 = 0xFFFFFFFF


def bit_hash(a: int, b: int) -> int:
    h = ((a * 0x9E3779B1) ^ (((b + 0x7F4A7C15) & MASK32) * 0x85EBCA77)) & MASK32
    return h ^ (h >> 15)


def clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


def adapt(p: int, n: int, bit: int) -> int:
    """A 16-bit probability of a 1 after `bit`, having seen n bits before: it moves 2/(2n + 3) of the way."""
    return clamp(p + ((((bit << 16) - p) * (131072 // (2 * n + 3))) >> 16), 0, 65535)


def node_word(c0: int, depth: int) -> int:
    """A node's word in its nibble's bucket: 1, then 2-3, 4-7, 8-15 by the bits known in the nibble."""
    return c0 if depth < 4 else (1 << (depth - 4)) | (c0 & ((1 << (depth - 4)) - 1))


class SegmentBits:
    """One segment's mixer state; predict then update at each byte in turn."""

    def __init__(self, contexts: int = WORDS):
        self.sparse, self.net = contexts == SPARSE, contexts == NET
        self.inputs = n = SPARSE_INPUTS if self.sparse else INPUTS + self.net
        self.w1_sets = NET_SETS if self.net else 1
        self.net_row = np.full(256, UNIFORM_FREQ, dtype=np.int64)  # the net set: the network's row, from keep
        self.net_cum: list[int] = []
        self.slots: dict[int, list[int]] = {}  # bucket (its first word's index) -> its 16 words, absent = zeros
        self.w1 = [W_START if i % n else 65536 for i in range(256 * self.w1_sets * n)]
        self.w2 = [W_START if i % n else 65536 for i in range(2048 * n)]
        self.history_p, self.history_n = [32768] * (SPARSE_CONTEXTS * 256), [0] * (SPARSE_CONTEXTS * 256)
        self.record = self.candidate = self.votes = 0  # the detected record length, a candidate, its votes
        self.last_at, self.last_gap = [0] * 256, [0] * 256  # by byte value: last position, gap before it
        curve = [squash((j - 16) * 128) * 16 for j in range(33)]
        self.apm1, self.apm2 = curve * 256, curve * 65536
        self.word = self.word1 = self.word2 = self.above = 0
        self.line_start = self.previous_line = 0
        self.ctx: list[int] = []  # position t's contexts, from predict
        self.cum: list[int] = []  # the incoming frequencies' cumulative sums, from predict
        self.nodes: dict[int, dict] = {}  # the nodes predict evaluated, which update learns from as they were

    def contexts(self, hist, t: int) -> list[int]:
        c = [0] * 9
        for k in range(1, min(8, t) + 1):
            c[k] = int(hist[t - k])
        o4 = c[1] | c[2] << 8 | c[3] << 16 | c[4] << 24
        values = [c[1], c[1] | c[2] << 8, c[1] | c[2] << 8 | c[3] << 16, o4, bit_hash(bit_hash(o4, c[5]), c[6])]
        if self.sparse:
            values += [c[2], c[2] | c[3] << 8, c[1] | c[3] << 8, c[4] | c[8] << 8, c[1] | c[2] << 8 | c[4] << 16,
                       self.word, c[3] | c[4] << 8, c[1] | c[5] << 8, c[1] | c[6] << 8 | c[7] << 16]
            r = self.record  # the bytes one and two records up
            up = int(hist[t - r]) if r and t >= r else 0
            up2 = int(hist[t - 2 * r]) if r and t >= 2 * r else 0
            values += [bit_hash(r, up | up2 << 8), bit_hash(r, up | c[1] << 8)]
        else:
            words = bit_hash(self.word, self.word1)
            col = t - self.line_start
            values += [self.word, words, bit_hash(words, self.word2), bit_hash(self.word, min(col, COL_MAX)),
                       bit_hash(self.above, c[1])]
        return [bit_hash(i + 1, v) for i, v in enumerate(values)]

    def bucket(self, i: int, nibble: int, write: bool) -> list[int] | None:
        """Context i's bucket for a nibble (0: the first; 16 + the high nibble: the second): one of
        two neighbouring buckets whose check matches, or None (read) / the one with the lower count
        at its first node, emptied (write)."""
        hh = bit_hash(self.ctx[i], nibble)
        check, at = hh | 1, hh & ((1 << SLOT_BITS) - 16)
        empty = [0] * 16
        b0, b1 = self.slots.get(at, empty), self.slots.get(at ^ 16, empty)
        if b0[0] == check:
            return b0
        if b1[0] == check:
            return b1
        if not write:
            return None
        victim = self.slots.setdefault(at ^ 16 if b1[1] & 0xFF < b0[1] & 0xFF else at, [0] * 16)
        victim[:] = [check] + [0] * 15  # in place: a context that found this bucket for this byte shares it, as in C
        return victim

    def buckets(self, nibble: int, write: bool) -> list:
        return [self.bucket(i, nibble, write) for i in range(len(self.ctx))]

    def evaluate(self, buckets: list, c1: int, c0: int, depth: int) -> dict:
        """Node c0's inputs and mixed probability of a 1 (12 bits); reads the state only."""
        cum = self.cum
        base, half = (c0 - (1 << depth)) << (8 - depth), 1 << (7 - depth)
        total, one = cum[base + 2 * half] - cum[base], cum[base + 2 * half] - cum[base + half]
        x = [_STRETCH[clamp((one * 4096 + total // 2) // total, 1, 4095)]]
        word, known, histories = node_word(c0, depth), 0, []
        for i, b in enumerate(buckets):
            v = b[word] if b is not None else 0
            x.append(_STRETCH[v >> 20] if v & 0xFF else 0)
            if self.sparse:
                histories.append(_STRETCH[self.history_p[i * 256 + (v >> 8 & 255)] >> 4] if v & 0xFF else 0)
            if CONTEXTS - 3 <= i < CONTEXTS:
                known = known * 2 + (v & 0xFF != 0)
        x += histories
        band = 0
        if self.net:  # the network's own split of the node, and its band of the first weight sets
            nc = self.net_cum
            nt, no = nc[base + 2 * half] - nc[base], nc[base + 2 * half] - nc[base + half]
            x.append(_STRETCH[clamp((no * 4096 + nt // 2) // nt, 1, 4095)])
            band = ((x[-1] + 2048) * NET_SETS) >> 12
        x.append(256)
        n = self.inputs
        o1, o2 = (c0 * self.w1_sets + band) * n, (c0 * 8 + known) * n
        d1 = sum(a * b for a, b in zip(x, self.w1[o1:o1 + n])) >> 16
        d2 = sum(a * b for a, b in zip(x, self.w2[o2:o2 + n])) >> 16
        pr = squash((d1 + d2) >> 1)
        st = _STRETCH[pr] + 2048
        lo, wgt = st >> 7, st & 127
        i1, i2 = c0 * 33 + lo, (c0 | c1 << 8) * 33 + lo
        p1 = (self.apm1[i1] * (128 - wgt) + self.apm1[i1 + 1] * wgt) >> 11
        p2 = (self.apm2[i2] * (128 - wgt) + self.apm2[i2 + 1] * wgt) >> 11
        return {"x": x, "d1": d1, "d2": d2, "o1": o1, "o2": o2,
                "pr": clamp((2 * pr + p1 + p2 + 2) >> 2, 1, 4095), "apm1": i1 + (wgt >> 6), "apm2": i2 + (wgt >> 6)}

    def descend(self, buckets, f, c1: int, c0: int, depth: int, mass: int, p: list[int]) -> None:
        base, width = (c0 - (1 << depth)) << (8 - depth), 1 << (8 - depth)
        if depth == 8:
            p[base] = mass
            return
        sub = self.cum[base + width] - self.cum[base]
        if sub << EVAL_SHIFT < self.cum[256]:
            share = (mass << 16) // sub
            for v in range(base, base + width):
                p[v] = (int(f[v]) * share) >> 16
            return
        if depth == 4:
            buckets = self.buckets(16 + (c0 & 15), False)
        self.nodes[c0] = self.evaluate(buckets, c1, c0, depth)
        m1 = (mass * self.nodes[c0]["pr"]) >> 12
        self.descend(buckets, f, c1, 2 * c0, depth + 1, mass - m1, p)
        self.descend(buckets, f, c1, 2 * c0 + 1, depth + 1, m1, p)

    def keep(self, net: np.ndarray) -> None:
        """The net set: the network's row of the position predicted next, before any stage."""
        self.net_row = np.array(net, dtype=np.int64)

    def predict(self, hist, t: int, freq: np.ndarray) -> None:
        """Refine position t's frequencies in place."""
        self.ctx = self.contexts(hist, t)
        self.cum = [0, *np.cumsum(freq.astype(np.int64)).tolist()]
        if self.net:
            self.net_cum = [0, *np.cumsum(self.net_row).tolist()]
        self.nodes = {}
        p = [0] * 256
        self.descend(self.buckets(0, False), freq, int(hist[t - 1]) if t else 0, 1, 0, 1 << 32, p)
        freq[:] = normalise(np.array(p, dtype=np.int64))

    def history(self, i: int, slot: int, bit: int) -> int:
        """The sparse set's bit histories: a slot's last bits (up to seven, after a leading 1) index
        an adaptive probability per context, which learns what such a history predicts (a
        deterministic context's run, an alternation); the slot's history after `bit`."""
        n, history = slot & 0xFF, slot >> 8 & 255
        if not n:
            return 2 + bit
        at = i * 256 + history
        seen = self.history_n[at]
        self.history_p[at] = adapt(self.history_p[at], seen, bit)
        self.history_n[at] = min(seen + 1, HISTORY_LIMIT)
        nxt = history * 2 + bit
        return nxt if nxt < 256 else (nxt & 127) | 128

    def learn(self, nd: dict, buckets: list, c0: int, depth: int, bit: int) -> None:
        """Node c0, as evaluated (nd), learns its bit: the weights, the curves, each context's word."""
        for weights, offset, d in ((self.w1, nd["o1"], nd["d1"]), (self.w2, nd["o2"], nd["d2"])):
            err = ((bit << 12) - squash(d)) * RATE
            for i, xi in enumerate(nd["x"]):
                weights[offset + i] = clamp(weights[offset + i] + ((xi * err) >> 14), -W_MAX, W_MAX)
        g = (bit << 16) + (bit << APM_RATE) - 2 * bit
        for apm, i in ((self.apm1, nd["apm1"]), (self.apm2, nd["apm2"])):
            apm[i] += (g - apm[i]) >> APM_RATE
        word = node_word(c0, depth)
        for i, b in enumerate(buckets):
            n = b[word] & 0xFF
            history = self.history(i, b[word], bit) if self.sparse else 0
            q = adapt(b[word] >> 16 if n else 32768, n, bit)
            b[word] = q << 16 | history << 8 | min(n + 1, LIMIT)

    def detect_record(self, y: int, t: int) -> None:
        """Fixed-length records (tables, database pages, relocations, pixel rows): a byte value
        recurring at one gap twice in a row votes for that gap as the record length; a candidate
        that outvotes the others (a majority vote) by more than RECORD_VOTES becomes it."""
        gap = t - self.last_at[y]
        if self.last_at[y] and gap == self.last_gap[y] and 2 <= gap <= RECORD_MAX:
            if gap == self.candidate:
                self.votes += 1
                if self.votes > RECORD_VOTES:
                    self.record = gap
            elif self.votes > 0:
                self.votes -= 1
            else:
                self.candidate, self.votes = gap, 1
        self.last_gap[y], self.last_at[y] = gap, t

    def advance(self, hist, t: int) -> None:
        """After byte t: the word and line state (and the sparse set's record length) moves on."""
        y = int(hist[t])
        if self.sparse:
            self.detect_record(y, t)
        lower = y + 32 if ord("A") <= y <= ord("Z") else y
        if ord("a") <= lower <= ord("z"):
            self.word = bit_hash(self.word, lower)
        elif self.word:
            self.word2, self.word1, self.word = self.word1, self.word, 0
        if y == ord("\n"):
            self.previous_line, self.line_start = self.line_start, t + 1
        above = self.previous_line + (t + 1 - self.line_start)
        self.above = int(hist[above]) if above < self.line_start else 0

    def update(self, hist, t: int) -> None:
        c1, y, c0 = int(hist[t - 1]) if t else 0, int(hist[t]), 1
        for depth in range(8):
            bit = (y >> (7 - depth)) & 1
            if depth % 4 == 0:
                buckets = self.buckets(16 + (c0 & 15) if depth else 0, True)
            self.learn(self.nodes.get(c0) or self.evaluate(buckets, c1, c0, depth), buckets, c0, depth, bit)
            c0 = 2 * c0 + bit
        self.advance(hist, t)

    def code(self, hist, t: int, freq: np.ndarray, coder) -> None:
        """Byte t coded (coder a bitcoder.BitEncoder: hist[t] given) or decoded into hist[t] (a
        BitDecoder) as eight bits: each node on the byte's path is evaluated (its buckets made where
        missing), codes its bit and learns it at once; freq: position t's incoming frequencies."""
        c1, c0 = int(hist[t - 1]) if t else 0, 1
        self.ctx = self.contexts(hist, t)
        self.cum = [0, *np.cumsum(freq.astype(np.int64)).tolist()]
        for depth in range(8):
            if depth % 4 == 0:
                buckets = self.buckets(16 + (c0 & 15) if depth else 0, True)
            nd = self.evaluate(buckets, c1, c0, depth)
            bit = coder.code(nd["pr"], (int(hist[t]) >> (7 - depth)) & 1)
            self.learn(nd, buckets, c0, depth, bit)
            c0 = 2 * c0 + bit
        hist[t] = c0 & 255
        self.advance(hist, t)


def applies(layout: Layout) -> bool:
    """Text and binary layouts: images and audio have their own last stages."""
    return layout.modality in (TEXT, BINARY)


def apply(symbols: np.ndarray, freqs: np.ndarray, layout: Layout, native: bool = True,
          in_place: bool = False, contexts: int = WORDS) -> np.ndarray:
    """The refined frequencies [T, 256] of a whole segment (compression); in_place rewrites
    `freqs` (int32, C order). native=False runs this reference (tests compare the two)."""
    if not applies(layout):
        raise ValueError("the bit mixer is for text and binary layouts")
    return apply_stage(symbols, freqs, in_place, library() if native else None, "tzip_bits_scan",
                       (*squash_tables(), contexts), lambda n: SegmentBits(contexts), "the bit mixer")


class BitsBatch(StateBatch):
    """The bit mixers of a batch of segments decoded in lock-step (protocol.StateBatch)."""

    KIND = STAGE_KINDS["bits"]

    def __init__(self, use: list[bool], history: np.ndarray, layout: Layout, contexts: int = WORDS):
        super().__init__(use, history, library(), "tzip_bits", "the bit mixer",
                         lambda lib: lib.tzip_bits_new(*squash_tables(), contexts), lambda: SegmentBits(contexts))
        self.reads_network = contexts == NET  # only the net set's mixers keep the network's rows

    def keep(self, freqs: np.ndarray, active: np.ndarray) -> None:
        """The step's rows [b, 256] as the network gave them, before any stage: what the mixers of
        the net set read beside the incoming rows (NativeStages does this in C, tzip_stages_predict)."""
        mask = np.bitwise_and(self.use, active, out=self.mask)
        if self.lib is not None:
            rows = np.ascontiguousarray(freqs, dtype=np.int32)
            self.lib.tzip_bits_keep(self.pointers[0], self.pointers[1], self.mask_pointer, rows.ctypes.data)
            return
        for i in np.flatnonzero(mask):
            self.states[i].keep(freqs[i])


class Sparse:
    """The bit mixer with the sparse contexts, as a method's last stage ("sparse" in the method
    table): the module's applies, apply and batch with the context set fixed."""

    applies = staticmethod(applies)

    @staticmethod
    def apply(symbols: np.ndarray, freqs: np.ndarray, layout: Layout, native: bool = True,
              in_place: bool = False) -> np.ndarray:
        return apply(symbols, freqs, layout, native, in_place, SPARSE)

    @staticmethod
    def batch(use: list[bool], history: np.ndarray, layout: Layout) -> BitsBatch:
        return BitsBatch(use, history, layout, SPARSE)


class Net:
    """The bit mixer with text's contexts and the network's own row as one more input, as a method's
    last stage ("bits-net" in the method table). The counts stage rescales the network's
    distribution by the segment's statistics before the mixer sees it; beside that blend, the
    network's own split of each node lets the mixer learn per file how far to trust the network
    (it also chooses the node's first weight set, in 8 bands of the split): the text bench set
    codes 0.58 % smaller than with method 8, all of it where the network is present."""

    applies = staticmethod(applies)
    reads_network = True  # its apply takes the network's rows (`net`) beside the incoming ones

    @staticmethod
    def apply(symbols: np.ndarray, freqs: np.ndarray, layout: Layout, native: bool = True,
              in_place: bool = False, net: np.ndarray | None = None) -> np.ndarray:
        """`freqs` the incoming rows, `net` [T, 256] the network's (rows before any stage)."""
        if not applies(layout):
            raise ValueError("the bit mixer is for text and binary layouts")
        data, out = segment_arrays(symbols, freqs, in_place)
        rows = np.ascontiguousarray(net, dtype=np.int32)
        if rows.shape != out.shape:
            raise ValueError("one network row per symbol")
        lib = library() if native else None
        if lib is not None:
            if lib.tzip_bits_scan_net(*squash_tables(), data.ctypes.data, len(data), rows.ctypes.data,
                                      out.ctypes.data):
                raise MemoryError("the bit mixer could not allocate its state")
            return out
        state = SegmentBits(NET)
        for t in range(len(data)):
            state.keep(rows[t])
            state.predict(data, t, out[t])
            state.update(data, t)
        return out

    @staticmethod
    def batch(use: list[bool], history: np.ndarray, layout: Layout) -> BitsBatch:
        return BitsBatch(use, history, layout, NET)
