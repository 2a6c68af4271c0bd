"""Peak memory of the `tzip` command, its worker processes included.

    python -m bench.memory FILE [FILE.tz]

Runs `tzip -c FILE` and `tzip -dc FILE.tz`, sampling the summed resident set size of the
command and all its descendants every 50 ms (psutil-free: /proc), and prints the peaks.
"""

from __future__ import annotations

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


def peak(cmd: list[str], out: Path) -> tuple[int, float]:
    t0 = time.time()
    with out.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=f)
        top = 0
        while proc.poll() is None:
            top = max(top, tree_rss(proc.pid))
            time.sleep(0.05)
    if proc.returncode:
        raise SystemExit(f"{cmd} failed")
    return top, time.time() - t0


def main() -> None:
    src = Path(sys.argv[1])
    packed = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/tmp") / (src.name + ".tz")
    tz = [sys.executable, "-m", "tzip.cli"]
    back = packed.with_suffix(".back")
    mem_c, t_c = peak(tz + ["-q", "-c", str(src)], packed)
    mem_d, t_d = peak(tz + ["-q", "-dc", str(packed)], back)
    same = back.read_bytes() == src.read_bytes()
    size = src.stat().st_size
    print(f"{src.name}: {size:,} bytes -> {packed.stat().st_size:,}; round trip {'ok' if same else 'FAILED'}")
    print(f"compress   peak {mem_c / 2**20:,.0f} MiB, {size / t_c / 1e3:.1f} kB/s (whole command)")
    print(f"decompress peak {mem_d / 2**20:,.0f} MiB, {size / t_d / 1e3:.1f} kB/s (whole command)")


if __name__ == "__main__":
    main()
