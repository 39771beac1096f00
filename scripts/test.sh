#!/usr/bin/env bash
# The test command (README, .ci/run): fetches ONNX Runtime, installs Chromium (for the report
# test) and the Python reference packages if needed, then runs clippy, the docs (no broken
# links) and every test. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-ort.sh
scripts/install-chromium.sh
scripts/install-python-deps.sh
cargo clippy --all-targets --locked -- -D warnings
# The docs of public items build without broken links.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib --locked
cargo test --locked "$@"
