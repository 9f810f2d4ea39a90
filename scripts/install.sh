#!/usr/bin/env bash
# Install everything kws needs on a Debian/Ubuntu machine: system packages (audio I/O,
# PortAudio, PulseAudio for the microphone test, espeak-ng and sox for test speech,
# flite, festival and the wamerican word list for synthetic training speech)
# and a virtual environment .venv with kws and its Python dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libsndfile1 libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins espeak-ng sox
          flite festival festvox-kallpc16k festvox-us-slt-hts wamerican)
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "note: not a Debian-like system; install ${packages[*]} with your package manager" >&2
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[train,test]"
echo "installed: .venv/bin/kws, .venv/bin/kws-train"
