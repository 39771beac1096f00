#!/usr/bin/env bash
# The report test renders report.html in headless Chromium. Installs Debian's chromium when
# it is missing (needs root and apt-get); otherwise says how to get it.
set -euo pipefail
if command -v "${SEGSCORE_CHROMIUM:-chromium}" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (Debian) for the report test" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "error: the report test needs Chromium: install Debian's 'chromium' package, or set SEGSCORE_CHROMIUM to a Chromium or Chrome binary" >&2
exit 1
