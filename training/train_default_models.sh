#!/usr/bin/env bash
# The shipped models in assets/: GRU and LSTM, trained by the same recipe (training/recipe.py
# --world: clip stage, stream stage, the synthetic speech, world stage, the mix of the stream
# and world stages, detector tuned to the shipped false-alarm budget), one core each, at the
# same time.
# Usage: bash training/train_default_models.sh [DATA] [SPEECH]
#   DATA: ../shared/data/speech_commands by default
#   SPEECH: non-command speech, ../shared/data/spoken_digits/recordings by default: half of
#   its speakers join the world stage's training, the other half stays unheard for
#   training.robustness
# About 2 h on 2 CPU cores, plus the synthesis (README, "Outside the data set"). Rerunning
# carries on where an interrupted run stopped; a step whose output exists is skipped, so to
# train them again remove assets/gru, assets/lstm and the earlier stages' bundles in runs/
# ({gru,lstm}128_{clips,streams,world}). The synthetic speech is made first, once, for both
# (their recipes then find it done); runs/synth is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/speech_commands}
speech=${2:-../shared/data/spoken_digits/recordings}
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
[ -f runs/synth/manifest.json ] || python -m training.synth --out runs/synth
python -m training.recipe --data "$data" --arch gru --units 128 --out assets/gru --speech "$speech" --world & gru=$!
python -m training.recipe --data "$data" --arch lstm --units 128 --out assets/lstm --speech "$speech" --world & lstm=$!
wait $gru
wait $lstm
