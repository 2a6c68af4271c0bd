"""Tar archives with their headers gathered: members' contents coded as one run of bytes.

In a tar every member is a 512-byte header block, then its content, zero-padded to a multiple of
512 bytes. Coded as they lie, the headers interrupt the contents every few kilobytes (a tar of
Java classes is a header every 2.5 KiB), and each header and run of padding costs the models a
guess where the content ends and what the next header's fields are: about 20 bytes a member on
the binary bench set's classes tar. Gathered, the headers are one table of 512-byte records
(the record model's case: names, modes and times repeat field by field) and the contents follow
each other as the files they are, so the match model and the contexts run on without a break.

The intermediate form:

    headers ‖ contents ‖ trailer ‖ count (u32 LE) ‖ b"TZTR"

`headers` is the archive's first `count` header blocks, in order; `contents` their members'
contents without padding (each as long as its header's size field says); `trailer` the archive's
bytes after the last gathered member as they are (the end-of-archive zero blocks, the record's
padding, or whatever follows where the archive stops parsing). Rebuilding walks the headers:
each is followed by its content and zeros up to the next multiple of 512. A member is gathered
only where its header's checksum holds, its size field parses, the archive holds all of its
blocks and its padding is zeros; the first that is not ends the gathering, and the rest of the
archive is the trailer. The form is produced only where at least MIN_MEMBERS members gather and
rebuilding gives back the input exactly.
"""

from __future__ import annotations

import struct

from tzip.errors import TzipError

TAG = "tar"
MAGIC = b"TZTR"
BLOCK = 512
TAIL = struct.Struct("<I4s")
# Fewer members gain less than the form's table costs: 4 KiB pieces of the classes tar holding two
# or three whole members code 1 to 4 bytes larger gathered.
MIN_MEMBERS = 8


def is_tar(head: bytes) -> bool:
    """Whether `head` starts with a ustar or GNU tar header whose checksum holds."""
    return len(head) >= BLOCK and head[257:262] == b"ustar" and content_size(head[:BLOCK]) is not None


def content_size(block: bytes) -> int | None:
    """The content length a header block announces, or None where the block is not a header tzip
    gathers (zeros, a checksum that does not hold, a size field that does not parse)."""
    if len(block) != BLOCK or not any(block):
        return None
    stored = _octal(block[148:156])
    if stored is None:
        return None
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    if stored != unsigned:
        return None
    field = block[124:136]
    if field[0] == 0x80:  # GNU base-256 for sizes of 8 GiB and more
        return int.from_bytes(field[1:], "big")
    return _octal(field)


def _octal(field: bytes) -> int | None:
    digits = field.strip(b" \0")
    if not digits or any(c not in b"01234567" for c in digits) or b"\0" in digits or b" " in digits:
        return None
    return int(digits, 8)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def gather(data: bytes) -> bytes | None:
    """The intermediate form of a tar archive, or None where fewer than MIN_MEMBERS members gather
    or the form would not rebuild `data` exactly."""
    headers, contents, pos, view = [], [], 0, memoryview(data)
    while pos + BLOCK <= len(data):
        size = content_size(data[pos : pos + BLOCK])
        end = pos + BLOCK + _padded(size) if size is not None else 0
        if size is None or end > len(data) or any(view[pos + BLOCK + size : end]):
            break
        headers.append(view[pos : pos + BLOCK])
        contents.append(view[pos + BLOCK : pos + BLOCK + size])
        pos = end
    if len(headers) < MIN_MEMBERS:
        return None
    out = b"".join([*headers, *contents, view[pos:], TAIL.pack(len(headers), MAGIC)])
    return out if restore(out) == data else None


def restore(form: bytes) -> bytes:
    """The archive an intermediate form stands for."""
    if len(form) < TAIL.size:
        raise TzipError("corrupted tzip stream (no tar table)")
    count, magic = TAIL.unpack_from(form, len(form) - TAIL.size)
    body = memoryview(form)[: len(form) - TAIL.size]
    if magic != MAGIC or count * BLOCK > len(body):
        raise TzipError("corrupted tzip stream (bad tar table)")
    out, at = [], count * BLOCK
    for i in range(count):
        header = body[i * BLOCK : (i + 1) * BLOCK]
        size = content_size(bytes(header))
        if size is None or at + size > len(body):
            raise TzipError("corrupted tzip stream (bad tar header)")
        out += [header, body[at : at + size], bytes(_padded(size) - size)]
        at += size
    out.append(body[at:])
    return b"".join(out)
