#!/usr/bin/env bash
# Installs Debian's xdelta3, the independent VCDIFF decoder sdkcompat/delta_test.go
# (TestDeltaInterop) checks our VCDIFF deltas against. Does nothing when xdelta3 is already
# on PATH; installs it with apt-get when running as root; otherwise prints what to run and
# exits 1 (the interop test fails, not skips, without xdelta3).
set -euo pipefail
if command -v xdelta3 >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing xdelta3 (Debian) for the VCDIFF interop test"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xdelta3 >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xdelta3 >/dev/null
  fi
  command -v xdelta3 >/dev/null && exit 0
fi
echo "xdelta3 is required by the delta interop test (sdkcompat TestDeltaInterop):" >&2
echo "  install it with: sudo apt-get install xdelta3   (Debian/Ubuntu; other systems: the xdelta3 package)" >&2
exit 1
