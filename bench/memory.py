"""Peak memory of the `tzip` command, its worker processes included.

    python -m bench.memory FILE [FILE.tz] [--seconds S]

Runs `tzip -c FILE` and `tzip -dc FILE.tz`, sampling the summed resident set size of the
command and all its descendants every 50 ms (psutil-free: /proc), and prints the peaks. With
--seconds, compression stops after S seconds and the peak is over the part of FILE coded by
then (the report says how much); decompression is then skipped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def tree_rss(pid: int) -> int:
    """Resident bytes of pid and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(d.name))
            rss[int(d.name)] = int(fields[21]) * 4096
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def descendants(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out += [int(d.name), *descendants(int(d.name))]
        except (OSError, IndexError, ValueError):
            continue
    return out


def peak(cmd: list[str], out: Path, seconds: float | None = None) -> tuple[int, float, bool]:
    """(peak bytes, seconds, whether it finished) of cmd writing to out."""
    t0 = time.time()
    with out.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f)
        top = 0
        while proc.poll() is None:
            top = max(top, tree_rss(proc.pid))
            time.sleep(0.05)
            if seconds is not None and time.time() - t0 > seconds:
                for pid in [*descendants(proc.pid), proc.pid]:
                    subprocess.run(["kill", "-9", str(pid)], capture_output=True)
                proc.wait()
                return top, time.time() - t0, False
    if proc.returncode:
        raise SystemExit(f"{cmd} failed")
    return top, time.time() - t0, True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path)
    ap.add_argument("packed", type=Path, nargs="?")
    ap.add_argument("--seconds", type=float, default=None, help="stop compressing after this long")
    args = ap.parse_args()
    src = args.file
    packed = args.packed or Path("/tmp") / (src.name + ".tz")
    tz = [sys.executable, "-m", "tzip.cli"]
    back = packed.with_suffix(".back")
    mem_c, t_c, done = peak(tz + ["-q", "-c", str(src)], packed, args.seconds)
    if not done:
        print(f"{src.name}: {src.stat().st_size:,} bytes, stopped after {t_c:.0f} s with {packed.stat().st_size:,}"
              f" bytes written")
        print(f"compress   peak {mem_c / 2**20:,.0f} MiB over that part")
        return
    mem_d, t_d, _ = peak(tz + ["-q", "-dc", str(packed)], back)
    same = back.read_bytes() == src.read_bytes()
    size = src.stat().st_size
    print(f"{src.name}: {size:,} bytes -> {packed.stat().st_size:,}; round trip {'ok' if same else 'FAILED'}")
    print(f"compress   peak {mem_c / 2**20:,.0f} MiB, {size / t_c / 1e3:.1f} kB/s (whole command)")
    print(f"decompress peak {mem_d / 2**20:,.0f} MiB, {size / t_d / 1e3:.1f} kB/s (whole command)")


if __name__ == "__main__":
    main()
