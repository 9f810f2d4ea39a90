#!/usr/bin/env bash
# The shipped models in assets/: GRU and LSTM, trained by the same recipe (training/recipe.py:
# clip stage, stream stage, detector tuned to the shipped false-alarm budget), one core each,
# at the same time.
# Usage: bash training/train_default_models.sh [DATA] [SPEECH]
#   DATA: ../shared/data/speech_commands by default
#   SPEECH: non-command speech for the tuning, ../shared/data/spoken_digits/recordings by default
# About 1.5 h on 2 CPU cores. Rerunning carries on where an interrupted run stopped; a step
# whose output exists is skipped, so remove assets/gru and assets/lstm first to train them again.
# The world-stage models in assets/world are the same recipe with --world
# --target-false-alarms-per-hour 10 (README, "Outside the data set").
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/speech_commands}
speech=${2:-../shared/data/spoken_digits/recordings}
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
python -m training.recipe --data "$data" --arch gru --units 128 --out assets/gru --speech "$speech" & gru=$!
python -m training.recipe --data "$data" --arch lstm --units 128 --out assets/lstm --speech "$speech" & lstm=$!
wait $gru
wait $lstm
