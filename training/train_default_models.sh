#!/usr/bin/env bash
# The shipped models in assets/: GRU and LSTM, trained by the same recipe (training/recipe.py:
# clip stage, stream stage, detector tuning), one core each, at the same time.
# Usage: bash training/train_default_models.sh [DATA]   (default DATA: ../shared/data/speech_commands)
# About 1.5 h on 2 CPU cores. Rerunning carries on where an interrupted run stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/speech_commands}
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
python -m training.recipe --data "$data" --arch gru --units 128 --out assets/gru & gru=$!
python -m training.recipe --data "$data" --arch lstm --units 128 --out assets/lstm & lstm=$!
wait $gru
wait $lstm
