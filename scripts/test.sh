#!/usr/bin/env bash
# The test command (README, .ci/run): fetches ONNX Runtime and installs Chromium (for the
# report test) if needed, then runs clippy and every test. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-ort.sh
scripts/install-chromium.sh
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked "$@"
