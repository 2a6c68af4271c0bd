#!/usr/bin/env bash
# Install tzip the way a user does and use it: build the wheel, install it into a fresh venv with
# only the base dependencies (no dev extras, so no torch), then run the installed `tzip` and the
# library from a directory outside the checkout on real files (text, WAV, PPM/PGM images).
# Fails on any mismatch. Needs the dev venv (.venv, for its python and pip) and PyPI for the base
# dependencies. Prints the wheel's non-.py contents and a few start-up timings (never fails on time).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
DATA=$ROOT/tests/data
# Nothing from the developer's environment may steer the installed package.
unset PYTHONPATH PYTHONHOME TZIP_NATIVE TZIP_NATIVE_LIB TZIP_NATIVE_BUILD TZIP_NATIVE_CFLAGS TZIP_NATIVE_MARCH \
      TZIP_CPU_LEVEL TZIP_MODEL TZIP_CACHE_DIR LD_PRELOAD
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

work=$(mktemp -d "${TMPDIR:-/tmp}/tzip-wheel-check.XXXXXX")
cleanup() { cd /; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "wheel_check: FAIL: $*" >&2; exit 1; }
step() { echo "-- wheel_check: $*"; }
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
started=$(now)

# 1. The wheel, built from a clean copy of the sources (tracked files and new, not ignored ones),
#    so that nothing left in the checkout (build/, in-place tzip/_native_*.so) can slip into it.
step "building the wheel"
mkdir -p "$work/src" "$work/dist"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf - | tar -xf - -C "$work/src"
else
    tar --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' --exclude='./tzip/_native_*.so' \
        -cf - . | tar -xf - -C "$work/src"
fi
t0=$(now)
(cd "$work/src" && "$PY" -m pip wheel -q --no-deps -w "$work/dist" .)
echo "   built in $(ms "$t0" "$(now)") ms"
shopt -s nullglob
wheels=("$work"/dist/tzip-*.whl)
shopt -u nullglob
[ "${#wheels[@]}" -eq 1 ] || fail "expected one tzip wheel in dist/, found ${#wheels[@]}"
whl=${wheels[0]}
echo "   $(basename "$whl"): $(stat -c %s "$whl") bytes"

# 2. What the wheel carries: the C library per CPU level, its header, every shipped model.
step "wheel contents"
"$PY" - "$whl" "$ROOT" <<'EOF'
import fnmatch, pathlib, sys, zipfile
# every model tzip/models holds (the default and those whose streams must still decode)
shipped = [f"tzip/models/{p.name}" for p in sorted((pathlib.Path(sys.argv[2]) / "tzip/models").glob("*.tzm"))]
with zipfile.ZipFile(sys.argv[1]) as z:
    infos = z.infolist()
names = [i.filename for i in infos]
for i in infos:
    if not i.filename.endswith(".py") and not i.filename.endswith("/"):
        print(f"   {i.file_size:>9}  {i.filename}")
print(f"   ({sum(n.endswith('.py') for n in names)} .py files not listed)")
missing = [want for want in (*shipped, "tzip/native/tzip.h") if want not in names]
if not fnmatch.filter(names, "tzip/_native_*.so"):
    missing.append("tzip/_native_*.so")
if missing:
    sys.exit(f"wheel_check: FAIL: the wheel lacks {', '.join(missing)}")
EOF

# 3. A fresh venv with the wheel and its base dependencies only.
step "installing into a fresh venv (base dependencies only)"
venv=$work/venv
"$PY" -m venv "$venv"
t0=$(now)
"$venv/bin/python" -m pip install -q "$whl"
echo "   installed in $(ms "$t0" "$(now)") ms: $("$venv/bin/python" -m pip freeze | tr '\n' ' ')"
"$venv/bin/python" -m pip show -q torch >/dev/null 2>&1 && fail "torch is installed in the fresh venv"
"$venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)" \
    || fail "torch is importable in the fresh venv"
[ -x "$venv/bin/tzip" ] || fail "the wheel installed no tzip command"

# 4. Use it from outside the checkout.
run=$work/run
mkdir -p "$run"
cd "$run"
tzip=$venv/bin/tzip
vpy=$venv/bin/python
location=$("$vpy" -c "import tzip; print(tzip.__file__)")
case "$location" in "$venv"/*) ;; *) fail "import tzip found $location, not the installed package" ;; esac

step "tzip --version"
version=$("$tzip" --version)
echo "   $version"
wheel_version=$(basename "$whl" | cut -d- -f2)
[[ $version =~ ^tzip\ ([0-9][^ ;]*)\; ]] || fail "tzip --version prints no version"
[ "${BASH_REMATCH[1]}" = "$wheel_version" ] || fail "tzip --version says ${BASH_REMATCH[1]}, the wheel is $wheel_version"
[[ $version =~ \(id\ [0-9a-f]{8,}\) ]] || fail "tzip --version names no model id"
[[ $version == *"C engine"* ]] || fail "the installed package does not run the C engine"

step "round trips through the tzip command"
cp "$DATA/alice_head.txt" "$DATA/speech.wav" .
"$vpy" - "$DATA" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
data = Path(sys.argv[1])
rgb = Image.open(data / "astronaut_crop.png").convert("RGB")
grey = Image.open(data / "camera_crop.png").convert("L")
Path("astronaut_crop.ppm").write_bytes(f"P6\n{rgb.width} {rgb.height}\n255\n".encode() + rgb.tobytes())
Path("camera_crop.pgm").write_bytes(f"P5\n{grey.width} {grey.height}\n255\n".encode() + grey.tobytes())
# a tar (coded with its headers gathered) and a zip (its entries inflated) of the test data
import tarfile, zipfile
with tarfile.open("data.tar", "w") as t, zipfile.ZipFile("data.zip", "w", zipfile.ZIP_DEFLATED) as z:
    for p in sorted(data.iterdir()):
        t.add(p, arcname=p.name)
        z.write(p, arcname=p.name)
EOF
for pair in alice_head.txt:text speech.wav:audio astronaut_crop.ppm:image camera_crop.pgm:image data.tar:binary \
            data.zip:binary; do
    f=${pair%%:*} modality=${pair#*:}
    cp "$f" "$f.orig"
    "$tzip" -q "$f"                                  # FILE -> FILE.tz, FILE kept
    [ -s "$f.tz" ] || fail "tzip $f wrote no $f.tz"
    "$tzip" -dc "$f.tz" | cmp - "$f.orig" || fail "tzip -dc $f.tz differs from $f"
    rm "$f"
    "$tzip" -d -q "$f.tz"                            # FILE.tz -> FILE
    cmp "$f" "$f.orig" || fail "tzip -d $f.tz differs from $f"
    "$tzip" -c - < "$f" | "$tzip" -dc - | cmp - "$f.orig" || fail "stdin/stdout round trip of $f differs"
    info=$("$tzip" info "$f.tz")
    grep -Eq "^ +modality +$modality" <<<"$info" || fail "tzip info $f.tz: expected modality $modality; got: $info"
    case $f in
        *.tar) grep -q "headers gathered" <<<"$info" || fail "tzip info $f.tz: the tar's headers were not gathered" ;;
        *.zip) grep -q "inflated" <<<"$info" || fail "tzip info $f.tz: the zip's entries were not inflated" ;;
    esac
    echo "   $f: $(stat -c %s "$f.orig") -> $(stat -c %s "$f.tz") bytes ($modality), tzip/tzip -d/tzip -dc/stdin ok"
done

step "the library without torch"
"$vpy" - <<'EOF'
import sys
from pathlib import Path

import tzip
from tzip.engine import library

for name in ("alice_head.txt.orig", "speech.wav.orig", "astronaut_crop.ppm.orig"):
    data = Path(name).read_bytes()
    packed = tzip.compress(data)
    assert tzip.decompress(packed) == data, f"tzip.decompress(tzip.compress({name})) differs"
assert library.available(), library.unavailable_reason()
assert "torch" not in sys.modules, "import tzip + compress/decompress imported torch"
print(f"   compress/decompress ok, C engine {library.level()}, torch not imported")
EOF

# 5. Start-up figures (informational): best of three.
step "timings (best of 3, ms)"
head -c 1024 "$DATA/alice_head.txt" > small.txt
best() {  # best wall time in ms of the command "$@", run three times
    local b="" t0 t
    for _ in 1 2 3; do
        t0=$(now); "$@" >/dev/null; t=$(ms "$t0" "$(now)")
        if [ -z "$b" ] || [ "$t" -lt "$b" ]; then b=$t; fi
    done
    echo "$b"
}
echo "   python -c pass:             $(best "$vpy" -c pass)"
echo "   python -c 'import tzip':    $(best "$vpy" -c 'import tzip')"
echo "   python -c 'import tzip.api': $(best "$vpy" -c 'import tzip.api')"
echo "   tzip --version:             $(best "$tzip" --version)"
echo "   tzip -c of 1 kB:            $(best "$tzip" -c small.txt)"

echo "wheel_check: ok ($(ms "$started" "$(now)") ms)"
