"""Benchmark harness: every codec on the bench sets, sizes, ratios and speeds in one run.

    python -m bench.run [--sets text,image,audio,binary] [--limit BYTES[,SET=BYTES]] [--no-tzip] [--classical-only]
                        [--out DIR] [--readme]

Inputs are the bench sets built by `python -m corpora.build text-bench image-bench audio-bench
binary-bench` (uncompressed: text, PPM/PGM, WAV; binary: executables and libraries, bytecode, a
database, a PDF, tars, tables and logs, each file as it is, tzip detecting the modality as
`tzip -c` does). `--limit` takes, per modality, the files in sorted order
(smallest first) up to that many bytes, for every codec alike. Each codec's output is decoded and checked
(bytes, or pixels/samples for image/audio codecs); a failed check is reported as a failure.
`--classical-only` adds tzip's classical-only path beside tzip (bench/classical.py: the same
coder and stages with the network's distribution uniform), so what the network is worth stays
measured. Writes results.json, results.md and ratio.png to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.codecs import Codec, classical, tzip_classical_codec, tzip_codec  # noqa: E402
from corpora.build import default_cache  # noqa: E402

UNITS = {"text": ("bits/byte", 8), "image": ("bits/subpixel", 8), "audio": ("bits/sample", 16),
         "binary": ("bits/byte", 8)}
SETS = {"text": "text-bench", "image": "image-bench", "audio": "audio-bench", "binary": "binary-bench"}
DEFAULT_SETS = ",".join(SETS)
IMAGE_SUFFIXES = (".ppm", ".pgm")


def bench_files(cache: Path, modality: str, limit: int) -> list[Path]:
    d = cache / "sets" / SETS[modality]
    manifest = d / "manifest.json"
    if not manifest.exists():
        raise SystemExit(f"{d} is not built: python -m corpora.build {SETS[modality]}")
    names = sorted(json.loads(manifest.read_text())["files"])
    if modality == "image":
        names = [n for n in names if n.endswith(IMAGE_SUFFIXES)]
    if limit:  # a subset: the smallest files first, so it holds as many files as it can
        names.sort(key=lambda n: ((d / n).stat().st_size, n))
    out, total = [], 0
    for n in names:
        size = (d / n).stat().st_size
        if limit and total + size > limit and out:
            continue
        out.append(d / n)
        total += size
    return out


def run_codec(codec: Codec, data: bytes) -> dict:
    t0 = time.perf_counter()
    blob = codec.encode(data)
    t1 = time.perf_counter()
    back = codec.decode(blob)
    t2 = time.perf_counter()
    return {"bytes": len(blob), "ok": bool(codec.same(data, back)), "enc_s": t1 - t0, "dec_s": t2 - t1}


def run(modalities: list[str], codecs: list[Codec], cache: Path, limit: int | dict[str, int], log=print) -> dict:
    """limit: bytes per modality, or per modality name with "" for the rest (see `limits`)."""
    results = {"modalities": {}, "missing": {}}
    for codec in codecs:
        reason = codec.available()
        if reason:
            results["missing"][codec.name] = reason
    for m in modalities:
        files = bench_files(cache, m, limit if isinstance(limit, int) else limit.get(m, limit.get("", 0)))
        rows = {}
        for codec in codecs:
            if m not in codec.modalities or codec.name in results["missing"]:
                continue
            per_file, raw = {}, 0
            for f in files:
                data = f.read_bytes()
                raw += len(data)
                try:
                    per_file[f.name] = {"raw": len(data), **run_codec(codec, data)}
                except Exception as e:  # a codec crash is a failed round trip, reported
                    per_file[f.name] = {"raw": len(data), "bytes": 0, "ok": False, "enc_s": 0, "dec_s": 0,
                                        "error": f"{type(e).__name__}: {e}"}
            total = sum(r["bytes"] for r in per_file.values())
            enc = sum(r["enc_s"] for r in per_file.values())
            dec = sum(r["dec_s"] for r in per_file.values())
            rows[codec.name] = {
                "raw": raw, "bytes": total, "ratio": total / raw if raw else 0,
                "bits": UNITS[m][1] * total / raw if raw else 0,
                "enc_MBps": raw / enc / 1e6 if enc else 0, "dec_MBps": raw / dec / 1e6 if dec else 0,
                "ok": all(r["ok"] for r in per_file.values()), "files": per_file,
            }
            log(f"{m:6} {codec.name:26} ratio {rows[codec.name]['ratio']:.4f}  "
                f"{'ok' if rows[codec.name]['ok'] else 'ROUND TRIP FAILED'}")
        results["modalities"][m] = {"files": [f.name for f in files], "codecs": rows}
    return results


REFERENCE = "xz -9e"  # speeds are also given as a multiple of this codec's, measured in the same run


def times(row: dict, ref: dict | None, key: str) -> str:
    """A speed as a multiple of the reference codec's."""
    return f"{row[key] / ref[key]:.3g}" if ref and ref[key] else "–"


def markdown(results: dict) -> str:
    lines = []
    for m, res in results["modalities"].items():
        unit = UNITS[m][0]
        raw = next(iter(res["codecs"].values()))["raw"] if res["codecs"] else 0
        ref = res["codecs"].get(REFERENCE)
        lines += [f"### {m} ({len(res['files'])} files, {raw:,} bytes)", "",
                  f"| codec | compressed bytes | ratio | {unit} | compress kB/s | × xz | decompress kB/s | × xz "
                  "| round trip |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for name, r in sorted(res["codecs"].items(), key=lambda kv: kv[1]["bytes"]):
            lines.append(f"| {name} | {r['bytes']:,} | {r['ratio']:.4f} | {r['bits']:.3f} | "
                         f"{1e3 * r['enc_MBps']:,.1f} | {times(r, ref, 'enc_MBps')} | {1e3 * r['dec_MBps']:,.1f} | "
                         f"{times(r, ref, 'dec_MBps')} | {'ok' if r['ok'] else 'FAILED'} |")
        lines.append("")
    if results["missing"]:
        lines += ["Missing codecs:", ""] + [f"- {k}: {v}" for k, v in results["missing"].items()] + [""]
    return "\n".join(lines)


def summary(results: dict) -> str:
    """The README's one table: every codec's ratio on every set it runs on, then tzip's speeds
    (kB/s on the run's machine, and as a multiple of xz -9e's in the same run); results.md has
    the full tables."""
    mods = list(results["modalities"])
    names: dict[str, None] = {}
    for m in mods:
        names.update(dict.fromkeys(results["modalities"][m]["codecs"]))
    head = [f"{m} ({len(results['modalities'][m]['files'])} files, "
            f"{next(iter(results['modalities'][m]['codecs'].values()), {'raw': 0})['raw'] / 1e6:.2f} MB)"
            for m in mods]

    def ratio(name: str, m: str) -> str:
        r = results["modalities"][m]["codecs"].get(name)
        return "–" if r is None else f"{r['ratio']:.4f}" + ("" if r["ok"] else " FAILED")

    def key(name: str) -> tuple:  # tzip first, then codecs of every set, then per set by mean ratio
        on = [m for m in mods if name in results["modalities"][m]["codecs"]]
        mean = sum(results["modalities"][m]["codecs"][name]["ratio"] for m in on) / len(on)
        return (not name.startswith("tzip"), -len(on), mods.index(on[0]), mean)

    lines = ["| codec (ratio = compressed / original) | " + " | ".join(head) + " |",
             "| --- |" + " ---: |" * len(mods)]
    lines += [f"| {n} | " + " | ".join(ratio(n, m) for m in mods) + " |" for n in sorted(names, key=key)]
    for label, k in (("tzip compress kB/s (× xz -9e)", "enc_MBps"), ("tzip decompress kB/s (× xz -9e)", "dec_MBps")):
        cells = []
        for m in mods:
            r, ref = results["modalities"][m]["codecs"].get("tzip"), results["modalities"][m]["codecs"].get(REFERENCE)
            cells.append("–" if r is None else f"{1e3 * r[k]:,.1f} ({times(r, ref, k)})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if results["missing"]:
        lines += ["", "Missing: " + "; ".join(f"{k} ({v})" for k, v in results["missing"].items()) + "."]
    return "\n".join(lines) + "\n"


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mods = list(results["modalities"])
    fig, axes = plt.subplots(1, len(mods), figsize=(5 * len(mods), 4), squeeze=False)
    for ax, m in zip(axes[0], mods):
        rows = sorted(results["modalities"][m]["codecs"].items(), key=lambda kv: kv[1]["ratio"])
        names = [n for n, _ in rows]
        ax.barh(names, [r["ratio"] for _, r in rows],
                color=["tab:red" if n == "tzip" else "tab:orange" if n.startswith("tzip") else "tab:blue"
                       for n in names])
        ax.set_title(f"{m}: compressed / raw (lower is better)")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- bench.run:begin -->", "<!-- bench.run:end -->"


def update_readme(md: str, readme: Path = README) -> bool:
    """Put the results table between the README's bench.run markers; False if it has none."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    readme.write_text(f"{head}{BEGIN}\n{md.strip()}\n{rest[rest.index(END):]}")
    return True


def limits(spec: str) -> dict[str, int]:
    """`--limit`: "N" for every set, "N,binary=M" to give a set its own ("": N for the rest)."""
    out = {}
    for part in spec.split(","):
        name, _, value = part.rpartition("=")
        if name and name not in SETS:
            raise argparse.ArgumentTypeError(f"unknown set {name!r} (one of {', '.join(SETS)})")
        out[name] = int(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default=DEFAULT_SETS)
    ap.add_argument("--limit", type=limits, default={}, help="bytes per modality (0: the whole set); "
                    "BYTES,SET=BYTES,... sets one set's apart, e.g. 1000000,binary=0")
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--no-tzip", action="store_true")
    ap.add_argument("--classical-only", action="store_true",
                    help="also run tzip with the model's output head zeroed (the stages alone, bench/classical.py)")
    ap.add_argument("--model", default=None, help="tzip model file or id")
    ap.add_argument("--workers", type=int, default=0, help="tzip worker processes (0: one per core, the CLI's default)")
    ap.add_argument("--readme", action="store_true", help="also write the table into README.md (between its markers)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # as the CLI: one engine thread per process
    codecs = classical() + ([] if args.no_tzip else [tzip_codec(args.model, args.workers)])
    if args.classical_only:
        codecs.append(tzip_classical_codec(args.model, args.workers))
    results = run([s for s in args.sets.split(",") if s], codecs, args.cache, args.limit)
    results["limit"] = {m: args.limit.get(m, args.limit.get("", 0)) for m in results["modalities"]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    md = markdown(results)
    (args.out / "results.md").write_text(md)
    chart(results, args.out / "ratio.png")
    if args.readme and not update_readme(summary(results)):
        print(f"README.md has no {BEGIN} ... {END} markers: table not written there", file=sys.stderr)
    print(md)
    failed = [n for r in results["modalities"].values() for n, c in r["codecs"].items() if not c["ok"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
