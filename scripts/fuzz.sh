#!/usr/bin/env bash
# A fuzzing campaign: runs every fuzz target in the module for FUZZTIME each (default 10m),
# one target at a time (`go test -fuzz` takes one target per run). FUZZPKG limits it to the
# packages whose path contains that string; FUZZPARALLEL sets -parallel (default: all cores).
#
# Every target runs even when an earlier one fails; the script fails at the end if any did.
# A failing input is written to <package>/testdata/fuzz/<target>/: fix the crash and commit
# the input, which `go test` (and so `make test`) then replays as a regression test.
#
# On a busy machine Go's fuzz coordinator sometimes ends a run with "context deadline
# exceeded" although no input failed (nothing is written to testdata/fuzz). Only that case is
# retried, once.
set -uo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10m}"
pkgfilter="${FUZZPKG:-}"
parallel=()
[ -n "${FUZZPARALLEL:-}" ] && parallel=(-parallel="$FUZZPARALLEL")
count=0
failed=()
run() {
  go test -run='^$' -fuzz="^${2}\$" -fuzztime="$fuzztime" "${parallel[@]}" "$1" 2>&1 | tee "$3"
  return "${PIPESTATUS[0]}"
}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
while IFS= read -r file; do
  dir="./$(dirname "$file")"
  [ -n "$pkgfilter" ] && [[ "$dir" != *"$pkgfilter"* ]] && continue
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    echo "fuzz: $dir $target ($fuzztime)"
    if ! run "$dir" "$target" "$out"; then
      if grep -q "context deadline exceeded" "$out" && ! grep -q "Failing input written" "$out"; then
        echo "fuzz: $target: coordinator deadline under load, no failing input; retrying once"
        run "$dir" "$target" "$out" || failed+=("$dir $target")
      else
        failed+=("$dir $target")
      fi
    fi
    count=$((count + 1))
  done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz' . | grep -v node_modules | sed 's|^\./||' | sort)
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of $count targets failed:"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "fuzz: $count targets passed"
