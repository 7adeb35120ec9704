#!/usr/bin/env bash
# Installs a Debian package a test needs when its command is missing:
#   scripts/deps-apt.sh COMMAND PACKAGE "what needs it"
# Does nothing when COMMAND is on PATH; installs PACKAGE with apt-get when running as root.
# When it cannot (not root, no apt-get, no network) it says why and exits 0: the test that
# needs it then fails or skips with the same instruction, so `make deps` need not stop here.
set -uo pipefail
cmd="$1" pkg="$2" what="$3"
if command -v "$cmd" >/dev/null 2>&1; then
  exit 0
fi
why=""
if [ "$(id -u)" != 0 ]; then
  why="not running as root"
elif ! command -v apt-get >/dev/null 2>&1; then
  why="no apt-get on this system"
else
  echo "installing $pkg (Debian) for $what"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq "$pkg" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq "$pkg" >/dev/null 2>&1 || true
  fi
  if command -v "$cmd" >/dev/null 2>&1; then
    exit 0
  fi
  why="apt-get install $pkg failed"
fi
echo "WARNING: $cmd is missing ($why); $what cannot run." >&2
echo "  install it with: sudo apt-get install $pkg   (Debian/Ubuntu)" >&2
exit 0
