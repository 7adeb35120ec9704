#!/usr/bin/env bash
# Installs Debian's xdelta3, the independent VCDIFF decoder that sdkcompat/delta_test.go
# (TestDeltaInterop) checks our VCDIFF deltas against. Does nothing when xdelta3 is already
# on PATH; installs it with apt-get when running as root. When it cannot (not root, no
# apt-get, no network) it says why and what to run, and exits 0: the interop test then FAILS
# with the same instruction (it never skips), so `make deps` need not stop here.
set -uo pipefail
if command -v xdelta3 >/dev/null 2>&1; then
  exit 0
fi
why=""
if [ "$(id -u)" != 0 ]; then
  why="not running as root"
elif ! command -v apt-get >/dev/null 2>&1; then
  why="no apt-get on this system"
else
  echo "installing xdelta3 (Debian) for the VCDIFF interop test"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq xdelta3 >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq xdelta3 >/dev/null 2>&1 || true
  fi
  if command -v xdelta3 >/dev/null 2>&1; then
    exit 0
  fi
  why="apt-get install xdelta3 failed"
fi
echo "WARNING: xdelta3 is missing ($why); the delta interop test (sdkcompat TestDeltaInterop) will fail." >&2
echo "  install it with: sudo apt-get install xdelta3   (Debian/Ubuntu; elsewhere the xdelta3 package)" >&2
exit 0
