"""Start-up time: `import tzip`, and `tzip -c` / `tzip -dc` of a 1 kB file, next to gzip's.

    python -m bench.startup [--runs N]

Each command runs N times in a fresh process; the table gives the median and the fastest wall
time. Nothing is cached between runs but what the OS caches (the files, the loaded libraries).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def timed(cmd: list[str], runs: int, stdin: bytes | None = None) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, input=stdin, capture_output=True, check=True)
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "one.txt"
        src.write_bytes(README.read_bytes()[:1000])
        packed = subprocess.run([sys.executable, "-m", "tzip.cli", "-c", str(src)], capture_output=True,
                                check=True).stdout
        (Path(d) / "one.txt.tz").write_bytes(packed)
        rows = {
            "python -c 'import tzip'": [sys.executable, "-c", "import tzip"],
            "python -c 'import tzip; tzip.compress(1 kB)'": [
                sys.executable, "-c", f"import tzip; tzip.compress(open({str(src)!r}, 'rb').read())"],
            "tzip -c (1 kB)": [sys.executable, "-m", "tzip.cli", "-c", str(src)],
            "tzip -dc (1 kB)": [sys.executable, "-m", "tzip.cli", "-dc", str(Path(d) / "one.txt.tz")],
            "gzip -c (1 kB)": ["gzip", "-c", str(src)],
        }
        print("| command | median | fastest |\n| --- | ---: | ---: |")
        for name, cmd in rows.items():
            t = timed(cmd, args.runs)
            print(f"| {name} | {statistics.median(t):.3f} s | {min(t):.3f} s |")


if __name__ == "__main__":
    main()
