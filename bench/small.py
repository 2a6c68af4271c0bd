"""Small inputs: every bench file cut into 4 KiB pieces, each piece compressed on its own.

    python -m bench.small [--limit BYTES] [--piece 4096] [--sets text,image,audio,binary] [--out DIR]
                          [--jobs N] [--cache DIR] [--model FILE|ID]

A 4 KiB message, record or packet is where a pretrained model should lead most: the adaptive
stages have almost nothing to learn from, and the classical answer to small data is a
dictionary. Codecs: tzip (the default model, content detected as `tzip -c` detects it,
`tzip.compress(piece)` in the process), tzip's classical-only path (bench/classical.py: the same
coder with the network's output uniform), tzip's network alone (every segment coded with the
network's distribution and no adaptive stage: `methods=("neural",)`), zstd -19, zstd -19 with a dictionary trained
(`zstd --train`'s algorithm and defaults, 110 KiB) on 4 KiB pieces of all the training sets (the
reference of the table's percentages: one dictionary for every kind of data, as tzip has one
model), zstd -19 with a dictionary trained on the matching training set alone (text-train for
the text pieces, ...; a set whose training set is not built takes the first), brotli -q 11 (its
built-in dictionary) and xz -9e. zstd frames are written as the zstd CLI writes them (content
size, dictionary id, checksum); neither the dictionary nor tzip's model is counted in the sizes.
Every piece is decompressed and compared; sizes are summed per set and over all sets.

The pieces are the files' bytes as they are: only the first piece of a PPM/PGM or WAV file
carries its header, so tzip sees the later pieces as headerless bytes, as it would any 4 KiB
fragment of a raw image or recording, and keeps a guessed pixel or PCM layout only where it codes
smaller than binary or text. The table says which modality tzip's streams record for the pieces
of each set (a piece coded in more than one stream counts once, as `+`-joined modalities).

`--limit` takes about BYTES / piece pieces per set, deterministically: each file gets at least
one (where the set has no more files than that), the rest go to files in proportion to their
size, spread evenly within each file; with fewer pieces than files, every k-th piece of the
set. 0 takes every piece. The default, 1 MiB a set (1,024 pieces in all), takes a few minutes
with a process per core (`--jobs`, default: the cores); tzip's three rows take most of it, a
few tenths of a second a piece each to compress and decompress. Writes
results.json and results.md to --out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.codecs import Codec  # noqa: E402
from bench.run import SETS, bench_files  # noqa: E402
from corpora.build import default_cache  # noqa: E402

PIECE = 4096
DEFAULT_LIMIT = 1 << 20  # bytes per set: 256 pieces of 4 KiB each
DEFAULT_SETS = ",".join(SETS)
TRAIN_SETS = ("text-train", "image-train", "audio-train", "binary-train")
OWN_TRAIN_SET = {"text": "text-train", "image": "image-train", "audio": "audio-train", "binary": "binary-train"}
DICT_SIZE = 112640  # zstd --train's default dictionary size (110 KiB)
DICT_SAMPLE_BYTES = 12 << 20  # training pieces per dictionary, shared equally by its sets (~100x its size)
REFERENCE = "zstd -19 + dictionary"
OWN = "zstd -19 + the set's dictionary"


# -- pieces --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    file: Path
    offset: int
    length: int

    @property
    def name(self) -> str:
        return f"{self.file.name}@{self.offset}"

    def read(self) -> bytes:
        with open(self.file, "rb") as f:
            f.seek(self.offset)
            return f.read(self.length)


def cut(files: list[Path], piece: int = PIECE) -> list[list[Piece]]:
    """Every file's pieces, in order: `piece` bytes each, the last one what is left."""
    out = []
    for f in files:
        size = f.stat().st_size
        out.append([Piece(f, o, min(piece, size - o)) for o in range(0, size, piece)])
    return out


def spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n): the middle of each of k equal parts."""
    return [(2 * i + 1) * n // (2 * k) for i in range(k)]


def select(per_file: list[list[Piece]], count: int) -> list[Piece]:
    """About `count` pieces (all where count is 0 or at least the number of pieces), in file order:
    at least one from every file if count allows, the rest in proportion to the files' sizes
    (largest remainders, ties to the earlier file), spread evenly within each file."""
    sizes = [len(p) for p in per_file]
    total = sum(sizes)
    if not count or count >= total:
        return [p for ps in per_file for p in ps]
    if count < len(per_file):
        flat = [p for ps in per_file for p in ps]
        return [flat[i] for i in spread(total, count)]
    rest, spare = count - len(per_file), total - len(per_file)  # beyond one per file
    shares = [rest * (n - 1) for n in sizes]
    alloc = [1 + s // spare for s in shares]
    left = count - sum(alloc)
    for i in sorted(range(len(sizes)), key=lambda i: (-(shares[i] % spare), i))[:left]:
        alloc[i] += 1
    return [ps[j] for ps, a in zip(per_file, alloc) for j in spread(len(ps), a)]


def set_pieces(cache: Path, modality: str, limit: int, piece: int = PIECE) -> tuple[list[Path], list[Piece]]:
    """A bench set's files (as bench.run takes them: images as PPM/PGM) and the pieces chosen."""
    files = bench_files(cache, modality, 0)
    return files, select(cut(files, piece), -(-limit // piece) if limit else 0)


# -- the dictionary --------------------------------------------------------------------------
def train_files(cache: Path, name: str) -> tuple[list[Path], str] | None:
    d = cache / "sets" / name
    manifest = d / "manifest.json"
    if not manifest.exists():
        return None
    m = json.loads(manifest.read_text())
    return [d / n for n in sorted(m["files"])], m["manifest_sha256"]


def zstd_dictionary(cache: Path, piece: int = PIECE, sets: tuple[str, ...] = TRAIN_SETS) -> tuple[bytes, dict]:
    """zstd's dictionary for small data, trained as `zstd --train` trains one (fastcover,
    ZDICT_trainFromBuffer's defaults, 110 KiB) on `piece`-byte pieces of those of `sets` that are
    built (DICT_SAMPLE_BYTES in all, an equal share from each, chosen as the bench pieces are).
    Never on bench data. Cached under CACHE/dicts/, keyed by the sets' manifests, the piece size
    and zstd's version."""
    import zstandard

    found = {name: got for name in sets if (got := train_files(cache, name)) is not None}
    if not found:
        raise SystemExit(f"no training set is built to train zstd's dictionary on: "
                         f"python -m corpora.build {' '.join(sets)}")
    share = DICT_SAMPLE_BYTES // len(found)
    key = json.dumps({"sets": {n: sha for n, (_, sha) in found.items()}, "piece": piece,
                      "sample_bytes": share, "dict_size": DICT_SIZE,
                      "zstd": zstandard.ZSTD_VERSION}, sort_keys=True)
    stem = cache / "dicts" / f"zstd-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    dict_path, info_path = stem.with_suffix(".dict"), stem.with_suffix(".json")
    if dict_path.exists() and info_path.exists():
        return dict_path.read_bytes(), json.loads(info_path.read_text())
    samples, trained_on = [], {}
    for name, (files, sha) in found.items():
        chosen = select(cut(files, piece), share // piece)
        samples += [p.read() for p in chosen]
        trained_on[name] = {"manifest_sha256": sha, "pieces": len(chosen), "bytes": sum(p.length for p in chosen),
                            "files": len({p.file for p in chosen})}
    t0 = time.perf_counter()
    d = zstandard.train_dictionary(DICT_SIZE, samples)
    info = {"trained_on": trained_on, "dict_id": d.dict_id(), "dict_bytes": len(d.as_bytes()),
            "piece": piece, "zstd": ".".join(map(str, zstandard.ZSTD_VERSION)),
            "train_s": round(time.perf_counter() - t0, 1), "path": str(dict_path)}
    stem.parent.mkdir(parents=True, exist_ok=True)
    for path, data in ((info_path, json.dumps(info, indent=1).encode()), (dict_path, d.as_bytes())):
        fd, tmp = tempfile.mkstemp(dir=stem.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    return d.as_bytes(), info


def describe(info: dict) -> str:
    sets = ", ".join(f"{n} ({v['pieces']} pieces from {v['files']} files)" for n, v in info["trained_on"].items())
    return (f"{info['dict_bytes']:,}-byte dictionary (id {info['dict_id']}) trained on {info['piece']}-byte "
            f"pieces of {sets}")


# -- codecs ------------------------------------------------------------------------------------
def zstd_codec(name: str, dictionary: bytes | None = None) -> Codec:
    """zstd -19, frames as the zstd CLI writes them (content size, checksum, dictionary id)."""
    import zstandard

    zd = zstandard.ZstdCompressionDict(dictionary) if dictionary else None
    c = zstandard.ZstdCompressor(level=19, dict_data=zd, write_checksum=True, write_content_size=True)
    return Codec(name, (), c.compress, zstandard.ZstdDecompressor(dict_data=zd).decompress)


def codecs(dicts: dict[str, bytes], modalities: list[str], model: str | None = None,
           with_tzip: bool = True) -> dict[str, list[Codec]]:
    """Per set, the small-inputs codecs (each must give the piece back byte for byte). dicts:
    the dictionary trained on every training set ("all") and on each set's own ("text", ...)."""
    import brotli

    shared = []
    if with_tzip:
        import tzip
        from bench.classical import classical_model

        flat = str(classical_model(model))
        shared += [Codec("tzip", (), lambda d: tzip.compress(d, model=model),
                         lambda d: tzip.decompress(d, model=model)),
                   Codec("tzip classical-only", (), lambda d: tzip.compress(d, model=flat),
                         lambda d: tzip.decompress(d, model=flat)),
                   Codec("tzip network alone", (), lambda d: tzip.compress(d, model=model, methods=("neural",)),
                         lambda d: tzip.decompress(d, model=model))]
    mixed = zstd_codec(REFERENCE, dicts["all"])
    shared += [mixed]
    rest = [
        zstd_codec("zstd -19"),
        Codec("brotli -q 11", (), lambda d: brotli.compress(d, quality=11), brotli.decompress),
        Codec("xz -9e", (), lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
    ]
    own = {m: zstd_codec(OWN, dicts[m]) if m in dicts else Codec(OWN, (), mixed.encode, mixed.decode)
           for m in modalities}
    return {m: [*shared, own[m], *rest] for m in modalities}


_codecs: dict[str, list[Codec]] = {}


def _init(dicts: dict[str, bytes], modalities: list[str], model: str | None, with_tzip: bool) -> None:
    _codecs.clear()
    _codecs.update(codecs(dicts, modalities, model, with_tzip))


def code_piece(job: tuple[str, Piece]) -> dict:
    """Every codec on one piece of a set: sizes, round trip, times; and the modality tzip codes it as."""
    from tzip.format.container import streams
    from tzip.format.detect import detect
    from tzip.format.layout import MODALITY_NAMES

    modality, piece = job
    data = piece.read()
    row = {"piece": piece.name, "raw": len(data), "detected": MODALITY_NAMES[detect(data).layout.modality]}
    for c in _codecs[modality]:
        try:
            t0 = time.perf_counter()
            blob = c.encode(data)
            t1 = time.perf_counter()
            if c.name == "tzip":  # the layout the stream records, after the headerless trial
                row["detected"] = "+".join(dict.fromkeys(MODALITY_NAMES[h.layout.modality] for h, _ in streams(blob)))
            ok = c.decode(blob) == data
            row[c.name] = {"bytes": len(blob), "ok": ok, "enc_s": t1 - t0, "dec_s": time.perf_counter() - t1}
        except Exception as e:  # a crash is a failed round trip, reported
            row[c.name] = {"bytes": 0, "ok": False, "enc_s": 0.0, "dec_s": 0.0, "error": f"{type(e).__name__}: {e}"}
    return row


# -- the run -----------------------------------------------------------------------------------
def summarise(rows: list[dict], names: list[str]) -> dict:
    raw = sum(r["raw"] for r in rows)
    out = {"pieces": len(rows), "raw": raw, "detected": {}, "codecs": {}}
    for r in rows:
        out["detected"][r["detected"]] = out["detected"].get(r["detected"], 0) + 1
    for n in names:
        got = [r[n] for r in rows]
        total = sum(g["bytes"] for g in got)
        enc, dec = sum(g["enc_s"] for g in got), sum(g["dec_s"] for g in got)
        out["codecs"][n] = {"bytes": total, "ratio": total / raw if raw else 0.0, "ok": all(g["ok"] for g in got),
                            "failed": [r["piece"] for r in rows if not r[n]["ok"]],
                            "enc_kBps": raw / enc / 1e3 if enc else 0.0, "dec_kBps": raw / dec / 1e3 if dec else 0.0}
    return out


def run(modalities: list[str], cache: Path, limit: int, piece: int = PIECE, jobs: int = 1,
        model: str | None = None, with_tzip: bool = True, log=print) -> dict:
    dicts, infos = {}, {}
    dicts["all"], infos["all"] = zstd_dictionary(cache, piece)
    for m in modalities:
        if m in OWN_TRAIN_SET and train_files(cache, OWN_TRAIN_SET[m]) is not None:
            dicts[m], infos[m] = zstd_dictionary(cache, piece, (OWN_TRAIN_SET[m],))
    for k, info in infos.items():
        log(f"{k}: {describe(info)}")
    chosen = {}
    for m in modalities:
        files, pieces = set_pieces(cache, m, limit, piece)
        chosen[m] = (files, pieces)
        log(f"{m}: {len(pieces)} pieces from {len({p.file for p in pieces})} of {len(files)} files")
    todo = [(m, p) for m in modalities for p in chosen[m][1]]
    t0 = time.perf_counter()
    if jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs, _init, (dicts, modalities, model, with_tzip)) as pool:
            rows = []
            for i, r in enumerate(pool.imap(code_piece, todo, chunksize=1)):
                rows.append(r)
                if (i + 1) % 64 == 0:
                    log(f"  {i + 1}/{len(todo)} pieces, {time.perf_counter() - t0:.0f} s")
    else:
        _init(dicts, modalities, model, with_tzip)
        rows = []
        for i, p in enumerate(todo):
            rows.append(code_piece(p))
            if (i + 1) % 64 == 0:
                log(f"  {i + 1}/{len(todo)} pieces, {time.perf_counter() - t0:.0f} s")
    names = [n for n in rows[0] if isinstance(rows[0][n], dict)] if rows else []
    results = {"piece": piece, "limit": limit, "dictionaries": infos, "codecs": names, "sets": {},
               "wall_s": round(time.perf_counter() - t0, 1)}
    at = 0
    for m in modalities:
        files, pieces = chosen[m]
        mine = rows[at : at + len(pieces)]
        at += len(pieces)
        results["sets"][m] = {**summarise(mine, names), "files": len(files),
                              "files_covered": len({p.file for p in pieces}), "rows": mine}
    results["all"] = summarise(rows, names)
    return results


def percent(x: int, ref: int) -> str:
    return f"{100 * (x / ref - 1):+.1f} %" if ref else "–"


def markdown(results: dict) -> str:
    names, sets = results["codecs"], results["sets"]
    cols = [*sets, "all"]
    part = lambda s: results["all"] if s == "all" else sets[s]  # noqa: E731
    lim = f"{results['limit']:,} bytes a set" if results["limit"] else "every piece"
    lines = [f"Pieces of {results['piece']:,} bytes, each compressed alone (--limit: {lim}); "
             f"ratio = compressed / raw, every piece decompressed and checked.", "",
             f"{REFERENCE}: one {describe(results['dictionaries']['all'])}. {OWN}: "
             + "; ".join(f"{m}: a {describe(results['dictionaries'][m])}" for m in sets if m in results["dictionaries"])
             + "".join(f"; {m}: the first (no {m} training set)" for m in sets if m not in results["dictionaries"])
             + ".", "",
             "| codec | " + " | ".join(cols) + " |", "| --- | " + " | ".join("---:" for _ in cols) + " |"]
    for n in names:
        cells = []
        for s in cols:
            c, ref = part(s)["codecs"][n], part(s)["codecs"][REFERENCE]["bytes"]
            cell = f"{c['ratio']:.4f}" + ("" if n == REFERENCE else f" ({percent(c['bytes'], ref)})")
            cells.append(cell if c["ok"] else f"{cell} FAILED")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append("")
    for s in cols:
        p = part(s)
        det = ", ".join(f"{v} {k}" for k, v in sorted(p["detected"].items(), key=lambda kv: -kv[1]))
        files = f" from {p['files_covered']} of {p['files']} files" if s != "all" else ""
        ref = p["codecs"][REFERENCE]["bytes"]
        lines += [f"### {s}: {p['pieces']} pieces{files}, {p['raw']:,} bytes (tzip coded: {det})", "",
                  f"| codec | compressed bytes | ratio | vs {REFERENCE} | round trip |",
                  "| --- | ---: | ---: | ---: | --- |"]
        for n, c in sorted(p["codecs"].items(), key=lambda kv: kv[1]["bytes"]):
            lines.append(f"| {n} | {c['bytes']:,} | {c['ratio']:.4f} | {percent(c['bytes'], ref)} | "
                         f"{'ok' if c['ok'] else 'FAILED: ' + ', '.join(c['failed'][:5])} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default=DEFAULT_SETS)
    ap.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="bytes of pieces per set (0: every piece)")
    ap.add_argument("--piece", type=int, default=PIECE)
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--out", type=Path, default=Path("bench/results-small"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes coding pieces side by side")
    ap.add_argument("--model", default=None, help="tzip model file or id (default: the shipped model)")
    ap.add_argument("--no-tzip", action="store_true")
    args = ap.parse_args(argv)
    modalities = [s for s in args.sets.split(",") if s]
    results = run(modalities, args.cache, args.limit, args.piece, args.jobs, args.model, not args.no_tzip)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    md = markdown(results)
    (args.out / "results.md").write_text(md)
    print(md)
    print(f"{results['all']['pieces']} pieces in {results['wall_s']} s")
    return 0 if all(c["ok"] for c in results["all"]["codecs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
