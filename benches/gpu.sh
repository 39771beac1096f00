#!/usr/bin/env bash
# GPU benchmark: segscore with --provider cuda and --provider cpu on the same data, for the
# transformer model (model-bound) and the demo model; plus the model alone (bench-model).
#
# Needs the CUDA build of ONNX Runtime and CUDA 13 + cuDNN 9:
#   scripts/fetch-ort.sh --cuda                 # -> .ort/cuda (or set ORT_DIR)
#   NVIDIA_LIBS=<site-packages>/nvidia           # e.g. PyTorch's nvidia-* wheels (cu13/, cudnn/)
#   cargo build --release                        # or set SEGSCORE to a binary
#   benches/gpu.sh [SEGMENTS]                    # default 200000
# PROVIDERS="cpu" runs the CPU rows only (to try the script without a GPU).
# Prints a markdown table; with OUT set, also writes $OUT/gpu.md and the run logs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${SEGSCORE:-target/release/segscore}
ORT_DIR=${ORT_DIR:-.ort/cuda}
N=${1:-200000}
WORK=${WORK:-/tmp/segscore-gpu}
OUTDIR=${OUT:-$WORK}
export ORT_DYLIB_PATH=$ORT_DIR/libonnxruntime.so.1.31.1
if [ -n "${NVIDIA_LIBS:-}" ]; then
  export LD_LIBRARY_PATH=$NVIDIA_LIBS/cu13/lib:$NVIDIA_LIBS/cudnn/lib:$ORT_DIR:${LD_LIBRARY_PATH:-}
fi
mkdir -p "$WORK" "$OUTDIR"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo "no GPU found")
cores=$(nproc)
"$BIN" generate -o "$WORK/data" --segments "$N" --files 8 2>/dev/null
field() { sed -n "s/.*\"$2\": *\([0-9.eE+-]*\).*/\1/p" "$1" | head -1; }
table="| model | provider | rows/s (segscore run) | rows/s (model only) |
|---|---|---:|---:|"
for model in transformer small; do
  for provider in ${PROVIDERS:-cuda cpu}; do
    flags=()
    if [ "$provider" = cuda ]; then flags=(--batch-size 1024 --max-tokens-per-batch 262144); fi
    "$BIN" run -q -i "$WORK/data" -m "models/reward_$model.onnx" -o "$WORK/out-$model-$provider" \
      --overwrite --provider "$provider" "${flags[@]}" 2>"$OUTDIR/run-$model-$provider.log"
    rate=$(field "$WORK/out-$model-$provider/summary.json" rows_per_second)
    used=$(sed -n 's/.*"provider": *"\([a-z]*\)".*/\1/p' "$WORK/out-$model-$provider/summary.json" | head -1)
    "$BIN" bench-model -q -i "$WORK/data" -m "models/reward_$model.onnx" --provider "$provider" \
      --rows "$N" "${flags[@]}" > "$WORK/bm.json" 2>>"$OUTDIR/run-$model-$provider.log"
    only=$(sed -n 's/.*"rows_per_second":\([0-9.eE+-]*\).*/\1/p' "$WORK/bm.json")
    table="$table
| $model | $used | $(printf '%.0f' "$rate") | $(printf '%.0f' "$only") |"
  done
done
report="GPU: $gpu; $cores CPU cores; $N segments (long-tailed lengths)

$table"
echo "$report"
echo "$report" > "$OUTDIR/gpu.md"
