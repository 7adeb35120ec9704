#!/usr/bin/env bash
# Installs Debian's xdelta3, the independent VCDIFF decoder that sdkcompat/delta_test.go
# (TestDeltaInterop) checks our VCDIFF deltas against (see deps-apt.sh). When it cannot, the
# interop test FAILS with the same instruction (it never skips).
exec "$(dirname "$0")/deps-apt.sh" xdelta3 xdelta3 "the delta interop test (sdkcompat TestDeltaInterop)"
