#!/usr/bin/env bash
# The test command (README, .ci/run): fetches ONNX Runtime, installs Chromium (for the report
# test) and the Python reference packages if needed, then runs clippy, the docs (no broken
# links) and every test; then the demo's tests in the build without the cluster. Extra
# arguments go to the default build's `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# ONNX Runtime 1.29+ records telemetry on Linux unless this is set before it starts: for the
# tests that load it in their own process and Python's onnxruntime. The segscore binary sets it
# itself (tests/it/models.rs checks that, with the variable removed).
export ORT_DISABLE_TELEMETRY=1
scripts/fetch-ort.sh
scripts/install-chromium.sh
scripts/install-python-deps.sh
# Both builds: the default one (with the Ballista cluster) and the one without
# (`--no-default-features`, the README's demo).
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --workspace --all-targets --locked --no-default-features -- -D warnings
# The docs of public items build without broken links.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib --locked --workspace
# Every crate's tests (the planner crate's unit tests of its SQL rewrites too), its features
# unified with segscore's, so nothing is built twice.
cargo test --locked --workspace "$@"
# The build without the cluster: the demo, and its answer to --cluster and `segscore cluster`.
if [ $# -eq 0 ]; then
  cargo test --locked --no-default-features --test it -- demo_runs without_the_cluster delta_lake compressed_csv
fi
