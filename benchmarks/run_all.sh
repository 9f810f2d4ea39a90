#!/usr/bin/env bash
# Every figure quoted in README.md, regenerated: bash benchmarks/run_all.sh [DATA] > out.txt
# Run on an otherwise idle machine; single-threaded BLAS, as the engine runs per stream.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/speech_commands}
export OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 TF_CPP_MIN_LOG_LEVEL=2
py=${PYTHON:-python}
echo "## MFCC"; $py -m benchmarks.bench_mfcc
for model in gru lstm; do echo; echo "## engine: $model"; $py -m benchmarks.bench_engine --model $model; done
echo; echo "## start-up and memory of the kws command"; $py -m benchmarks.bench_startup --runs 5 --minutes 60
echo; echo "## soak"; $py -m benchmarks.bench_soak --model gru --minutes 60 --data "$data"
echo; echo "## LiteRT export"; $py -m benchmarks.bench_export
echo; echo "## full-size data set: loading, memory, one epoch (long: about 15 min)"; $py -m benchmarks.bench_scale --epochs 1
echo; echo "## evaluation speed"; $py -m benchmarks.bench_evaluate --model gru --clips 1000
stream=$(mktemp -d)/validation_stream.wav
echo; echo "## validation stream"; $py -m training.make_stream --data "$data" --split-salt kws --minutes 10 --seed 2 --out "$stream"
for model in gru lstm; do
  echo; echo "## $model on the validation stream (kws evaluate --truth)"
  $py -m kws.cli evaluate "$stream" --truth "${stream%.wav}.csv" --model $model | tail -n 1
done
