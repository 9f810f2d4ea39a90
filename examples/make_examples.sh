#!/usr/bin/env bash
# Make examples/commands.wav: the ten commands spoken by espeak-ng (synthetic speech,
# several voices), 1.2 s apart over quiet noise, and examples/commands.csv, its truth
# (label,time_ms). Needs espeak-ng and sox.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
voices=(en-us en-gb en-us+m3 en-gb-x-rp en-us+f2)
words=(yes no up down left right on off stop go)
sox -n -r 16000 -c 1 -b 16 "$tmp/gap.wav" trim 0 1.2
parts=("$tmp/gap.wav")
echo "label,time_ms" > commands.csv
t=1200
i=0
for word in "${words[@]}"; do
  voice=${voices[$((i % ${#voices[@]}))]}
  espeak-ng -v "$voice" -s 140 -w "$tmp/raw_$i.wav" "$word"
  sox "$tmp/raw_$i.wav" -r 16000 -c 1 -b 16 "$tmp/w_$i.wav" silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse
  len_ms=$(soxi -D "$tmp/w_$i.wav" | awk '{printf "%d", $1 * 1000}')
  echo "$word,$t" >> commands.csv
  parts+=("$tmp/w_$i.wav" "$tmp/gap.wav")
  t=$((t + len_ms + 1200))
  i=$((i + 1))
done
sox "${parts[@]}" "$tmp/speech.wav"
sox "$tmp/speech.wav" -p synth whitenoise vol 0.003 | sox -m "$tmp/speech.wav" - -b 16 commands.wav
echo "wrote examples/commands.wav ($(soxi -D commands.wav) s) and examples/commands.csv"
