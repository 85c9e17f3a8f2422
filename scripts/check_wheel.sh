#!/usr/bin/env bash
# Build the wheel, install it into a fresh venv, and score a sample transcript from another folder.
# Proves the installed package carries its classifiers and taxonomy (no checkout, no ./models).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/callcycle-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" -m pip wheel --no-deps -q -w "$WORK/dist" "$ROOT"
wheel=$(ls "$WORK"/dist/callcycle-*.whl)
size=$(du -k "$wheel" | cut -f1)
echo "wheel: $(basename "$wheel") (${size} KiB)"
# PEP 561: type checkers see the installed library's annotations
"$PYTHON" -c "import sys, zipfile; sys.exit('pipeline/py.typed missing from the wheel' if 'pipeline/py.typed' not in zipfile.ZipFile(sys.argv[1]).namelist() else 0)" "$wheel"
"$PYTHON" -m venv "$WORK/venv"
# dependencies come from the same index as the development venv
"$WORK/venv/bin/pip" install -q "$wheel"
mkdir -p "$WORK/calls" "$WORK/elsewhere"
cp "$ROOT"/data/calls/*.json "$WORK/calls/" 2>/dev/null || cp "$(ls "$ROOT"/data/calls/* | grep -E '\.(vtt|srt|txt)$' | head -1)" "$WORK/calls/"
cd "$WORK/elsewhere"
PREFECT_HOME="$WORK/prefect" "$WORK/venv/bin/callcycle" run "$WORK/calls" --out "$WORK/out" --no-summary
test -n "$(ls "$WORK"/out/calls/part-*.parquet)"
"$WORK/venv/bin/callcycle" summary "$WORK/out" >/dev/null
echo "wheel install: scored $(ls "$WORK"/out/calls/part-*.parquet | wc -l) call(s) from $(pwd)"
