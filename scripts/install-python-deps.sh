#!/usr/bin/env bash
# Installs the Python packages the tests use as references, from PyPI, pinned:
#   tokenizers    Hugging Face's tokenizers (the reference for segscore's token sequences)
#   moto[server]  a real S3-compatible server (`python -m moto.server`) the s3 tests start
# Running it again is a no-op when they are there.
set -euo pipefail
py=$(command -v python3 || command -v python)
want=("tokenizers==0.23.3" "moto[server]==5.2.1")
if "$py" - "${want[@]}" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, pinned = spec.split("==")
    name = name.split("[")[0]
    try:
        if version(name) != pinned:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
try:
    import moto.server  # needs the [server] extra (flask)
except ImportError:
    sys.exit(1)
PY
then
  exit 0
fi
echo "installing ${want[*]} from PyPI for the tests"
"$py" -m pip install --quiet --disable-pip-version-check "${want[@]}"
