"""The x86 call/jump filter: relative E8/E9 targets made absolute before machine code is modelled.

A call instruction (E8) or near jump (E9) holds its target relative to the next instruction, so
calls to one function from different places differ in all four bytes. Made absolute, they repeat,
and the match model, the context counts and the network find them (paq8's exe model and xz's BCJ
filter rest on the same idea; on 400 kB of libmpfr tzip's models code 9 % shorter after it).

As xz's BCJ, only operands whose top byte is 00 or FF change (targets within 16 MiB, where real
code lies), and they change within that set: 25-bit arithmetic, sign-extended. The decoder then
finds exactly the positions the encoder changed, scanning the same way, and undoes each (an
operand overlapping the one of an opcode left alone is left alone too: changing it could bring
that one's top byte into range for the decoder). A
segment is filtered on its own from its position in the payload (`base`), so segments stay
independent; an opcode in a segment's last four bytes is left as it is. tzip/native/x86.c does the
same fast; this is the reference and the fallback.
"""

from __future__ import annotations

import numpy as np

from tzip.engine.library import library

ELF_MACHINES = (0x03, 0x3E)  # EM_386, EM_X86_64
PE_MACHINES = (0x014C, 0x8664)  # IMAGE_FILE_MACHINE_I386, _AMD64


def is_x86(head: bytes) -> bool:
    """Whether a file's first bytes are an x86 ELF or PE executable or library."""
    if head[:4] == b"\x7fELF" and len(head) >= 20:
        order = "little" if head[5] == 1 else "big"
        return int.from_bytes(head[18:20], order) in ELF_MACHINES
    if head[:2] == b"MZ" and len(head) >= 64:
        pe = int.from_bytes(head[60:64], "little")
        return head[pe : pe + 4] == b"PE\0\0" and int.from_bytes(head[pe + 4 : pe + 6], "little") in PE_MACHINES
    return False


def _reference(buf: bytearray, base: int, decode: bool) -> None:
    i, n, passed = 0, len(buf), -5  # the last opcode left alone
    while i + 4 < n:
        if buf[i] & 0xFE != 0xE8:
            i += 1
            continue
        if buf[i + 4] not in (0x00, 0xFF) or i - passed <= 4:  # out of range, or overlapping one left alone
            passed, i = i, i + 1
            continue
        x = int.from_bytes(buf[i + 1 : i + 5], "little")
        at = base + i + 5
        y = ((x - at) if decode else (x + at)) & 0x1FFFFFF
        if y & 0x1000000:
            y |= 0xFE000000
        buf[i + 1 : i + 5] = y.to_bytes(4, "little")
        i += 5


def apply(data: bytes, base: int, decode: bool = False, native: bool = True) -> bytes:
    """`data` filtered (decode=False) or restored (decode=True); base: data[0]'s payload position."""
    buf = bytearray(data)
    lib = library() if native else None
    if lib is None:
        _reference(buf, base, decode)
        return bytes(buf)
    arr = np.frombuffer(buf, dtype=np.uint8)
    lib.tzip_x86_filter(arr.ctypes.data, len(buf), base, int(decode))
    return bytes(buf)
