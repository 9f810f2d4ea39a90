#!/usr/bin/env bash
# `kws listen` without a sound card, as README shows it: a PulseAudio null sink whose
# monitor is the default input, examples/commands.wav played into it, and the live
# panel captured from a tmux terminal (80x24). Needs pulseaudio, pulseaudio-utils, tmux.
#   bash examples/listen_demo.sh > listen_screen.txt
set -euo pipefail
cd "$(dirname "$0")/.."
started=0
if ! pulseaudio --check 2>/dev/null; then pulseaudio -D --exit-idle-time=-1; started=1; sleep 1; fi
module=$(pactl load-module module-null-sink sink_name=kws_demo)
cleanup() {
  tmux kill-session -t kws_demo 2>/dev/null || true
  pactl unload-module "$module" || true
  if [ "$started" = 1 ]; then pulseaudio --kill || true; fi
}
trap cleanup EXIT
pactl set-default-source kws_demo.monitor
tmux new-session -d -s kws_demo -x 80 -y 24 ".venv/bin/kws listen --seconds 25; sleep 30"
sleep 4  # the model loads and the panel appears
paplay --device=kws_demo examples/commands.wav
sleep 1
tmux capture-pane -p -t kws_demo
