"""The package build's C part: tzip's library (tzip/native/*.c) as one CPython extension per CPU
level, so one wheel serves any x86-64 CPU. tzip/engine/library.py loads the best level the CPU
runs; every level computes the same integers (tests force each). Everything else about the
package is in pyproject.toml."""

import platform
from pathlib import Path

from setuptools import Extension, setup

NATIVE = Path("tzip/native")
SOURCES = sorted(str(p) for p in NATIVE.glob("*.c"))
COMMON = ["-O3", "-std=c99", "-pthread"]  # ISO C: no floating-point contraction, so exact float sums stay exact
if platform.machine().lower() in ("x86_64", "amd64"):
    LEVELS = {
        "portable": ["-march=x86-64", "-mtune=generic"],
        "avx2": ["-march=x86-64-v3"],
        "avx512": ["-march=x86-64-v4", "-mavx512vnni"],
    }
else:
    LEVELS = {"portable": []}

setup(
    ext_modules=[
        Extension(f"tzip._native_{level}", SOURCES, depends=sorted(str(p) for p in NATIVE.glob("*.h")),
                  define_macros=[("TZIP_MODULE", f"_native_{level}")], extra_compile_args=COMMON + flags,
                  extra_link_args=["-pthread"], libraries=["m"])
        for level, flags in LEVELS.items()
    ],
)
