#!/usr/bin/env bash
# The test command (README, .ci/run): fetches ONNX Runtime if needed, then runs every test
# and clippy. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-ort.sh
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked "$@"
