#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library that segscore loads at run time.
#
#   scripts/fetch-ort.sh          CPU build  (PyPI onnxruntime==1.31.1)     -> .ort/cpu/
#   scripts/fetch-ort.sh --cuda   CUDA build (PyPI onnxruntime-gpu==1.31.1) -> .ort/cuda/
#
# The wheel is fetched with `pip download` (no install, works without a writable
# site-packages), its sha256 is checked against the pin below, and the shared
# libraries are extracted. segscore finds .ort/ next to this checkout without any
# environment variable; ORT_DYLIB_PATH overrides. Running it again is a no-op.
# Set SEGSCORE_ORT_DIR to extract somewhere else than <repo>/.ort.
set -euo pipefail

version=1.31.1
variant=cpu
case "${1:-}" in
  "" | --cpu) ;;
  --cuda) variant=cuda ;;
  *) echo "usage: $0 [--cpu|--cuda]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${SEGSCORE_ORT_DIR:-$root/.ort}/$variant
lib=$dest/libonnxruntime.so.$version
if [ -f "$lib" ]; then
  echo "ONNX Runtime $version ($variant) already at $lib"
  exit 0
fi

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "error: this script pins the Linux x86_64 wheels; on $(uname -s)-$(uname -m) install ONNX Runtime $version yourself and set ORT_DYLIB_PATH to its shared library" >&2
  exit 1
fi

# The pinned wheels (cp311 tag; the shared library inside is the same for every Python version).
if [ "$variant" = cpu ]; then
  pkg=onnxruntime
  wheel=onnxruntime-$version-cp311-cp311-manylinux_2_28_x86_64.whl
  sha=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
else
  pkg=onnxruntime-gpu
  wheel=onnxruntime_gpu-$version-cp311-cp311-manylinux_2_28_x86_64.whl
  sha=e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6
fi

py=$(command -v python3 || command -v python || true)
if [ -z "$py" ]; then
  echo "error: python3 with pip is needed to fetch the $pkg wheel from PyPI (or set ORT_DYLIB_PATH to an existing libonnxruntime.so.$version)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching $pkg==$version from PyPI ..."
"$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
  "$pkg==$version" -d "$tmp"
got=$(sha256sum "$tmp/$wheel" | cut -d' ' -f1)
if [ "$got" != "$sha" ]; then
  echo "error: sha256 of $wheel is $got, expected $sha" >&2
  exit 1
fi
"$py" - "$tmp/$wheel" "$tmp/x" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in z.namelist():
        if n.startswith("onnxruntime/capi/lib") and ".so" in n:
            z.extract(n, sys.argv[2])
PY
mkdir -p "$dest"
# Move the libraries in, the main one last, so a half-finished fetch is never taken as complete.
for f in "$tmp"/x/onnxruntime/capi/lib*.so*; do
  [ "$(basename "$f")" = "libonnxruntime.so.$version" ] || mv -f "$f" "$dest/"
done
mv -f "$tmp/x/onnxruntime/capi/libonnxruntime.so.$version" "$lib.partial"
mv -f "$lib.partial" "$lib"
echo "ONNX Runtime $version ($variant) ready at $lib"
