"""A binary arithmetic coder: a bit at a time with a 12-bit probability of a 1 (the classical
way's coder, tzip/native/bitcoder.h is the C statement of the same integers).

The interval [x1, x2] of 32-bit bounds narrows to x1 + ((x2 - x1) >> 12)·p for a 1 and past it
for a 0; a leading byte on which both bounds agree is written and shifted out (carry-free, as in
the PAQ family's coders). The end writes x1's four bytes, so the decoder's code value, read with
zeros past the end, lies in the last interval.
"""

from __future__ import annotations

MASK = 0xFFFFFFFF


class _Interval:
    """The bounds both directions narrow alike."""

    def __init__(self):
        self.x1, self.x2 = 0, MASK

    def narrow(self, bit: int, mid: int) -> None:
        """The interval on the bit's side of mid (a 1 takes [x1, mid], a 0 (mid, x2]), then each
        leading byte on which both bounds agree shifted out."""
        if bit:
            self.x2 = mid
        else:
            self.x1 = mid + 1
        while not (self.x1 ^ self.x2) & 0xFF000000:
            self.shift_out()
            self.x1, self.x2 = (self.x1 << 8) & MASK, ((self.x2 << 8) & MASK) | 255

    def mid(self, p1: int) -> int:
        """Where a bit with probability p1/4096 of a 1 splits the interval."""
        return self.x1 + ((self.x2 - self.x1) >> 12) * p1

    def shift_out(self) -> None:
        """The encoder writes the agreed byte, the decoder reads the next one."""
        raise NotImplementedError


class BitEncoder(_Interval):
    def __init__(self):
        super().__init__()
        self.out = bytearray()

    def shift_out(self) -> None:
        self.out.append(self.x2 >> 24)

    def code(self, p1: int, bit: int) -> int:
        """Code `bit` with probability p1/4096 of a 1; returns the bit."""
        self.narrow(bit, self.mid(p1))
        return bit

    def bytes(self) -> bytes:
        return bytes(self.out) + self.x1.to_bytes(4, "big")


class BitDecoder(_Interval):
    def __init__(self, data: bytes):
        super().__init__()
        self.data, self.pos = data, 4
        self.x = int.from_bytes(data[:4].ljust(4, b"\0"), "big")

    def shift_out(self) -> None:
        nxt = self.data[self.pos] if self.pos < len(self.data) else 0
        self.pos += 1
        self.x = ((self.x << 8) & MASK) | nxt

    def code(self, p1: int, bit: int = 0) -> int:
        """The next bit, coded with probability p1/4096 of a 1 (`bit` is ignored: the encoder's API)."""
        mid = self.mid(p1)
        bit = int(self.x <= mid)
        self.narrow(bit, mid)
        return bit
