"""The C library (tzip/native/*.c), its interface read from tzip/native/tzip.h.

tzip.h is the only declaration of what crosses between Python and C: the positions in the arrays
Python fills (enums), the decode_turn struct, and every exported function's prototype. This module
parses it, so a change to an argument list is made once, in C, and the ctypes types follow; and it
asks a loaded library which header it was built from (tzip_abi_version, tzip_abi_sizeof), so a
stale or foreign build fails with AbiMismatch instead of misreading its arguments.

The package build (setup.py) compiles the library once per CPU level (portable, AVX2, AVX-512
VNNI) as extension modules; `library()` loads the best one this CPU runs with ctypes, so no C
compiler is needed at run time. Where there is none, or TZIP_NATIVE=0, `library()` returns None
and `unavailable_reason()` says why: callers then run the PyTorch reference engine.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[1] / "native"
HEADER = SOURCE_DIR / "tzip.h"

# The non-pointer C types tzip.h may use; every pointer crosses as c_void_p (callers pass addresses).
_SCALARS: dict[str, type | None] = {"void": None, "int": ctypes.c_int, "int32_t": ctypes.c_int32,
                                    "int64_t": ctypes.c_int64, "uint8_t": ctypes.c_uint8}


class AbiMismatch(OSError):
    """A compiled library disagrees with the tzip.h this process parsed (an OSError, as a failed build is)."""


@dataclass(frozen=True)
class Header:
    """What tzip.h declares. enums: each enum's members by name (e.g. enums["tzip_cfg"]["TZIP_CFG_D_MODEL"]
    is the index of d_model in the cfg array); defines: its integer #defines; structs: ctypes.Structure
    classes by typedef name; functions: (restype, argtypes) by exported name."""

    version: int
    defines: dict[str, int]
    enums: dict[str, dict[str, int]]
    structs: dict[str, type[ctypes.Structure]]
    functions: dict[str, tuple[type | None, list[type]]]

    def constant(self, name: str) -> int:
        """An integer #define or enum member, by name."""
        if name in self.defines:
            return self.defines[name]
        for members in self.enums.values():
            if name in members:
                return members[name]
        raise KeyError(f"tzip.h declares no constant {name}")


def _declaration(text: str) -> tuple[type | None, str]:
    """A C declaration ("const int32_t *cfg", "int64_t t", "count_state *tzip_counts_new") as its ctypes
    type and name ("" where unnamed). Any pointer is c_void_p; a scalar must be one of _SCALARS."""
    words = [w for w in re.findall(r"\w+", text) if w != "const"]
    if not words:
        raise ValueError(f"tzip.h: cannot read the declaration {text.strip()!r}")
    name = words[-1] if len(words) > 1 else ""
    if "*" in text:
        return ctypes.c_void_p, name
    if words[0] not in _SCALARS:
        raise ValueError(f"tzip.h: type {words[0]!r} in {text.strip()!r} has no ctypes equivalent here")
    return _SCALARS[words[0]], name


def _integer(text: str, known: dict[str, int]) -> int:
    text = text.strip()
    return known[text] if text in known else int(text.rstrip("uUlL"), 0)


def parse_header(text: str) -> Header:
    """tzip.h's contents as a Header. The header keeps to a regular form (see its opening comment):
    integer #defines, enums with implicit or integer values, typedef'd structs of one field per
    declaration, and prototypes starting with TZIP_API."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)
    number = r"[-+]?(?:0[xX][0-9a-fA-F]+|\d+)[uUlL]*"
    defines = {m[1]: int(m[2].rstrip("uUlL"), 0)
               for m in re.finditer(rf"^\s*#\s*define\s+(\w+)\s+({number})\s*$", text, re.M)}
    code = re.sub(r"^\s*#.*$", "", text, flags=re.M)

    enums: dict[str, dict[str, int]] = {}
    known = dict(defines)
    for m in re.finditer(r"\benum\s+(\w+)\s*\{(.*?)\}\s*;", code, re.S):
        members, value = {}, -1
        for item in filter(None, (i.strip() for i in m[2].split(","))):
            name, _, given = (part.strip() for part in item.partition("="))
            value = _integer(given, known) if given else value + 1
            members[name] = known[name] = value
        enums[m[1]] = members

    structs: dict[str, type[ctypes.Structure]] = {}
    for m in re.finditer(r"\btypedef\s+struct\s+\w+\s*\{(.*?)\}\s*(\w+)\s*;", code, re.S):
        fields = [(name, ctype) for ctype, name in map(_declaration, filter(str.strip, m[1].split(";")))]
        structs[m[2]] = type(m[2], (ctypes.Structure,), {"_fields_": fields})

    functions: dict[str, tuple[type | None, list[type]]] = {}
    for m in re.finditer(r"\bTZIP_API\s+([^;{}()]+?)\s*\(([^()]*)\)\s*;", code):
        restype, name = _declaration(m[1])
        args = [] if m[2].strip() in ("", "void") else [_declaration(a)[0] for a in m[2].split(",")]
        functions[name] = (restype, args)

    if "TZIP_ABI_VERSION" not in defines:
        raise ValueError("tzip.h defines no TZIP_ABI_VERSION")
    return Header(defines["TZIP_ABI_VERSION"], defines, enums, structs, functions)


@functools.cache
def header() -> Header:
    """tzip/native/tzip.h, parsed once."""
    return parse_header(HEADER.read_text())


def bind(lib: ctypes.CDLL, hdr: Header) -> None:
    """Set every declared function's restype and argtypes on `lib`."""
    for name, (restype, argtypes) in hdr.functions.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise AbiMismatch(f"tzip native library ABI mismatch: tzip.h declares {name}, the library lacks it; "
                              "rebuild it from tzip/native") from None
        fn.restype, fn.argtypes = restype, argtypes


def check_abi(lib, hdr: Header) -> None:
    """Raise AbiMismatch unless `lib` reports the ABI version and every tzip_abi_item of `hdr`.

    Item TZIP_ABI_SIZEOF_X is sizeof(tzip_x) (compared with the ctypes struct parsed from the header),
    any other TZIP_ABI_X the constant TZIP_X. `lib` needs only tzip_abi_version() and
    tzip_abi_sizeof(item), so a test can pass a stand-in."""
    problems = []
    version = lib.tzip_abi_version()
    if version != hdr.version:
        problems.append(f"ABI version is {version} in the library, {hdr.version} in tzip.h")
    for item, index in hdr.enums["tzip_abi_item"].items():
        if item == "TZIP_ABI_ITEM_COUNT":
            continue
        got = lib.tzip_abi_sizeof(index)
        if item.startswith("TZIP_ABI_SIZEOF_"):
            what = "tzip_" + item.removeprefix("TZIP_ABI_SIZEOF_").lower()
            want, unit = ctypes.sizeof(hdr.structs[what]), " bytes"
        else:
            what = "TZIP_" + item.removeprefix("TZIP_ABI_")
            want, unit = hdr.constant(what), ""
        if got < 0:
            problems.append(f"the library does not report {what}")
        elif got != want:
            problems.append(f"{what} is {got}{unit} in the library, {want} in tzip.h")
    if problems:
        raise AbiMismatch("tzip native library ABI mismatch: " + "; ".join(problems)
                          + "; rebuild it from tzip/native (remove the cached tzip_native_*.so)")


def load(path: Path, hdr: Header | None = None) -> ctypes.CDLL:
    """The library at `path` with its functions typed from the header, after the ABI check."""
    hdr = hdr or header()
    lib = ctypes.CDLL(str(path))
    bind(lib, hdr)
    check_abi(lib, hdr)
    return lib


def cache_dir() -> Path:
    return Path(os.environ.get("TZIP_CACHE_DIR") or Path.home() / ".cache" / "tzip")


def _build() -> str:
    """What besides the sources decides the compiled code (part of the cache key)."""
    march, cflags = os.environ.get("TZIP_NATIVE_MARCH", "native"), os.environ.get("TZIP_NATIVE_CFLAGS", "")
    return f"{platform.machine()} {sys.platform} {march} {cflags}"


def build_key() -> str:
    """A hash of every source and header (names and bytes) and the build: a changed file is a new library."""
    h = hashlib.sha256()
    for path in sorted([*SOURCE_DIR.glob("*.c"), *SOURCE_DIR.glob("*.h")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(_build().encode())
    return h.hexdigest()[:16]


def _compile(out: Path) -> None:
    """Build the shared library at `out` (atomically: a rename), preferring code tuned for this CPU."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise OSError("no C compiler found (set CC)")
    sources = [str(p) for p in sorted(SOURCE_DIR.glob("*.c"))]
    out.parent.mkdir(parents=True, exist_ok=True)
    error = "failed"
    march = os.environ.get("TZIP_NATIVE_MARCH", "native")
    for tuning in ([f"-march={march}"] if march else [], []):
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
        extra = os.environ.get("TZIP_NATIVE_CFLAGS", "").split()
        cmd = [cc, "-O3", *tuning, *extra, "-std=c99", "-shared", "-fPIC", "-pthread", "-o", tmp, *sources, "-lm"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode == 0:
                os.replace(tmp, out)
                return
            error = (done.stderr.strip().splitlines() or ["failed"])[-1]
        except OSError as e:
            error = str(e)
        os.unlink(tmp)
    raise OSError(f"cannot build {SOURCE_DIR.name}/ with {cc}: {error}")


LEVELS = ("portable", "avx2", "avx512")  # tzip_cpu_level's names: the package's extensions tzip._native_<level>


def packaged(level: str) -> Path | None:
    """The package's build of the library for `level`, if it has one (found, not imported)."""
    spec = importlib.util.find_spec(f"tzip._native_{level}")
    return Path(spec.origin) if spec is not None and spec.origin else None


def _load_packaged() -> tuple[ctypes.CDLL, str]:
    """The best level this CPU runs of the package's builds, or the one TZIP_CPU_LEVEL names."""
    base = packaged("portable")
    if base is None:
        raise OSError("the C library is not built: install the package (pip install .), or set "
                      "TZIP_NATIVE_BUILD=1 to compile it from tzip/native here")
    portable = load(base)
    best = LEVELS[portable.tzip_cpu_level()]
    wanted = os.environ.get("TZIP_CPU_LEVEL", "") or best
    if wanted not in LEVELS:
        raise OSError(f"TZIP_CPU_LEVEL must be one of {', '.join(LEVELS)}")
    if LEVELS.index(wanted) > LEVELS.index(best):
        raise OSError(f"TZIP_CPU_LEVEL={wanted}: this CPU runs the {best} build at most")
    for level in reversed(LEVELS[: LEVELS.index(wanted) + 1]):
        path = packaged(level)
        if path is not None:
            return (portable if level == "portable" else load(path)), level
    return portable, "portable"


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_level = ""
_tried = False
_error = ""


def library() -> ctypes.CDLL | None:
    """The library checked against tzip.h: the package's build for this CPU; None if unavailable
    (not built, TZIP_NATIVE=0, a failed developer build: see unavailable_reason).

    Developer options: TZIP_NATIVE_LIB=PATH loads that build (a sanitizer's, say);
    TZIP_NATIVE_BUILD=1 compiles tzip/native here on first use (TZIP_NATIVE_MARCH, CC,
    TZIP_NATIVE_CFLAGS), cached under $TZIP_CACHE_DIR by a hash of the sources."""
    global _lib, _level, _tried, _error
    with _lock:
        if _tried:
            return _lib
        _tried = True
        if os.environ.get("TZIP_NATIVE", "1") == "0":
            _error = "disabled by TZIP_NATIVE=0"
            return None
        try:
            if os.environ.get("TZIP_NATIVE_LIB"):
                _lib, _level = load(Path(os.environ["TZIP_NATIVE_LIB"])), "TZIP_NATIVE_LIB"
            elif os.environ.get("TZIP_NATIVE_BUILD") == "1":
                path = cache_dir() / f"tzip_native_{build_key()}.so"
                if not path.exists():
                    _compile(path)
                _lib, _level = load(path), "built here"
            else:
                _lib, _level = _load_packaged()
        except AbiMismatch:
            raise  # a build that misreads its arguments must never run, nor fall back silently
        except OSError as e:
            _error = str(e)
        return _lib


def level() -> str:
    """Which build runs: a tzip_cpu_level name, or how a developer build was given."""
    library()
    return _level


def available() -> bool:
    return library() is not None


def unavailable_reason() -> str:
    library()
    return _error
