#!/usr/bin/env bash
# Install tzip as a user would (pip install ., no torch), then compress and decompress real files
# with the shipped default model, next to xz.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q .
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
.venv/bin/tzip --version
for f in README.md tests/data/alice_head.txt tests/data/speech.wav; do
  cp "$f" "$out/"
  name=$(basename "$f")
  .venv/bin/tzip -v "$out/$name"
  .venv/bin/tzip -d -c "$out/$name.tz" | cmp - "$f"
  xz -9e -k -c "$f" > "$out/$name.xz"
  echo "  $name: $(stat -c %s "$f") bytes -> tzip $(stat -c %s "$out/$name.tz"), xz -9e $(stat -c %s "$out/$name.xz") (round trip ok)"
done
.venv/bin/tzip info "$out/alice_head.txt.tz"
