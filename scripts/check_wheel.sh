#!/usr/bin/env bash
# Build the wheel, install it with its dependencies (no TensorFlow: the runtime does not
# need it) into a new virtual environment outside the checkout, and run the shipped
# models from there. CI runs this after the tests.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$repo/.venv/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" "$repo" >/dev/null
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$work"/dist/kws-*.whl
cd "$work"
sox -q "$repo/examples/commands.wav" one.wav trim 14 1
"$work/venv/bin/kws" classify one.wav
"$work/venv/bin/kws" stream "$repo/examples/commands.wav" --model gru
"$work/venv/bin/kws-train" --help >/dev/null
if "$work/venv/bin/python" -c "import tensorflow" 2>/dev/null; then
  echo "check_wheel: tensorflow should not be installed by the runtime wheel" >&2; exit 1
fi
echo "check_wheel: the installed wheel runs the shipped models without TensorFlow"
