"""How a segment can be coded: one row per container method.

A method names the chain of adaptive stages (tzip/stages/) that rewrite the network's
frequencies before the range coder uses them, in order; stored and zstd segments skip the
coder, and an lzma segment is a block of segments coded by LZMA2 (codec/floor.py). Every other
table (the container's names and letters, the encoder's choices, which methods chain, which
stages a decode batch builds) is read off this one.
"""

from __future__ import annotations

from dataclasses import dataclass

from tzip.format.layout import AUDIO, BINARY, IMAGE, TEXT

MIXER = "mixer"  # the family of the bit mixer's methods (8, 10, 11, 14)


@dataclass(frozen=True)
class Method:
    id: int  # the segment frame's method byte
    name: str
    letter: str  # `tzip info -v`
    stages: tuple[str, ...] | None  # stages after the network, in order; None: not range-coded
    modalities: frozenset[int] | None = None  # the layouts its last stage fits (None: any)
    # the chain its segments carry on (None: it does not chain; its stages keep per-segment arrays):
    # methods of one family share a chain's history and stages, each segment running its own method's
    family: str | None = None
    chained_only: bool = False  # a chain's way only (independent segments are not offered it)
    retired: bool = False  # decoded, but the encoder uses it only when asked to
    network: bool = True  # the stages rewrite the network's frequencies; False: a uniform distribution's
    bitwise: bool = False  # each byte coded bit by bit by the bit mixer (codec/classical.py), not range-coded

    @property
    def chainable(self) -> bool:
        return self.family is not None

    @property
    def coded(self) -> bool:
        """Range-coded with the network's (and the stages') frequencies."""
        return self.stages is not None


METHODS = (
    Method(0, "stored", "s", None),
    Method(1, "zstd", "z", None),
    Method(2, "neural", "n", ()),
    Method(3, "match", "m", ("match",), family="match"),
    Method(4, "context1", "k", ("match", "counts1"), family="context1", retired=True),
    Method(5, "context", "c", ("match", "counts"), family="context"),
    Method(6, "pixels", "p", ("match", "counts", "pixels"), frozenset({IMAGE})),
    Method(7, "samples", "a", ("match", "samples"), frozenset({AUDIO})),
    # the bit mixers' methods share a chain: a binary chain's segments that are text run the text contexts
    # (method 8) while the match model and the counts carry on (MIXER)
    Method(8, "bits", "b", ("match", "counts", "bits"), frozenset({TEXT, BINARY}), family=MIXER),
    Method(9, "lzma", "x", None),
    # the bit mixer's stages without the network, which has not learnt machine code or bytecode, and
    # with binary data's sparse contexts: a chain codes its first 256 KiB both ways and carries on
    # with the smaller (api)
    Method(10, "classical", "u", ("match", "counts", "sparse"), frozenset({TEXT, BINARY}), family=MIXER,
           chained_only=True, network=False, bitwise=True),
    # the network's way for binary chains: its distribution, rescaled by the match model and the counts,
    # into the bit mixer with binary data's contexts (method 10's stages, with the network)
    Method(11, "sparse", "y", ("match", "counts", "sparse"), frozenset({TEXT, BINARY}), family=MIXER,
           chained_only=True),
    # method 6's stages over a uniform distribution: an image segment where the network costs more than
    # it gives (a photo's noise: chelsea.ppm codes 3.2 % larger with it) is coded as if it had none
    Method(12, "classical-pixels", "q", ("match", "counts", "pixels"), frozenset({IMAGE}), network=False),
    # and method 7's for audio
    Method(13, "classical-samples", "v", ("match", "samples"), frozenset({AUDIO}), network=False),
    # the text chains' way: method 8's stages, its bit mixer also given the network's own row (the counts
    # stage rescales the network's distribution before the mixer sees it), so it learns per file how far
    # to trust the network
    Method(14, "bits-net", "t", ("match", "counts", "bits-net"), frozenset({TEXT, BINARY}), family=MIXER,
           chained_only=True),
)
BY_ID = {m.id: m for m in METHODS}
BY_NAME = {m.name: m for m in METHODS}
CODED = tuple(m.name for m in METHODS if m.coded)  # the range coder's methods, in id order
CHAINABLE = tuple(m.name for m in METHODS if m.chainable)
DEFAULT = tuple(m.name for m in METHODS if not m.retired)  # what the encoder chooses among unless told


def method(name: str) -> Method:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r} (one of {', '.join(BY_NAME)})") from None
