#!/usr/bin/env bash
# Many cores: segscore with every core against the Python baseline, and its scaling from one
# thread to all, with the demo model on the CPU provider (the cheap model: the run is bound by
# reading, the window, the evaluation and writing, not by the model).
#
#   cargo build --release                          # or set SEGSCORE to a binary
#   benches/many-cores.sh [SEGMENTS]               # default 4000000
#
# Four steps, each `benches/e2e.py` (3 runs, alternating with the baseline where there is one):
#   sorted-T      T sorted files (T = THREADS, default all cores) whose key ranges do not overlap
#   undeclared-1  one sorted file, nothing declared (as pandas, polars, DuckDB write it)
#   scaling       the T files at --threads 1 against --threads T
#   memory        peak RSS at 1M segments and at SEGMENTS, --threads T
# Needs python3 with pyarrow, numpy and onnxruntime. With OUT set, also writes each step's
# table and JSON there (the GPU machine's results folder); WORK holds the generated data.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${SEGSCORE:-target/release/segscore}
N=${1:-4000000}
T=${THREADS:-$(nproc)}
OUTDIR=${OUT:-/tmp/segscore-many}
WORK=${WORK:-/tmp/segscore-bench}
mkdir -p "$OUTDIR" "$WORK"
echo "$(nproc) cores; $(python3 -c 'import onnxruntime, pyarrow, numpy; print("onnxruntime", onnxruntime.__version__, "pyarrow", pyarrow.__version__, "numpy", numpy.__version__)')"
step() {
  local name=$1
  shift
  echo "== $name"
  python3 benches/e2e.py --bin "$BIN" --workdir "$WORK" --threads "$T" --segments "$N" \
    --json "$OUTDIR/$name.json" "$@" 2>&1 | tee "$OUTDIR/$name.txt"
}
step "sorted-$T" --files "$T" --layout sorted --repeats 3
step undeclared-1 --files 1 --layout undeclared --repeats 3
step scaling --scaling --files "$T" --layout sorted --repeats 3
step memory --memory 1000000 "$N"
