#!/usr/bin/env bash
# The exact recipe of the shipped models in assets/ (GRU and LSTM, identical but for --arch).
# Stage 1: single clips (1.2 s sequences), many updates. Stage 2: fine-tune on 4 s streams
# of 2-4 clips, keeping the epoch that scores best on a validation stream. Then tune the
# detector on a validation stream. Usage: bash training/train_default_models.sh [DATA]
# (default DATA: ../shared/data/speech_commands). About 1.5 h on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/speech_commands}
split=(--val-percent 15 --test-percent 0 --split-salt kws)
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
train_one() {
  local arch=$1
  python -m training.train --data "$data" --arch "$arch" --out "runs/${arch}_sp_clips" "${split[@]}" \
    --epochs 70 --patience 20 --seq-seconds 1.2 --stream-minutes 5 --speed 0.1 --quiet
  python -m training.train --data "$data" --arch "$arch" --out "assets/$arch" --init "runs/${arch}_sp_clips" "${split[@]}" \
    --epochs 25 --patience 12 --lr 5e-4 --seq-seconds 4 --speed 0.1 --monitor stream --stream-minutes 15 --quiet
  python -m training.tune_detector --model "assets/$arch" --data "$data" --split-salt kws --minutes 10
}
train_one gru &
train_one lstm &
wait
