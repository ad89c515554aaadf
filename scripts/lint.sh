#!/usr/bin/env bash
# Formatting, static analysis and architecture boundaries. Needs a configured build directory
# (for compile_commands.json); defaults to ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
files=$(find common coordinator worker ctl proto tests -name '*.cc' -o -name '*.h' | sort)
echo "== clang-format"
clang-format --dry-run --Werror $files
echo "== boundaries"
scripts/check_boundaries.sh
echo "== clang-tidy"
sources=$(find common coordinator worker ctl -name '*.cc' | sort)
out=$(mktemp)
if ! printf '%s\n' $sources | xargs -P 2 -n 4 clang-tidy -p "$build" --quiet >"$out" 2>&1; then
  grep -v -E '^[0-9]+ warnings? generated|^Suppressed|^Use -header-filter' "$out" || true
  rm -f "$out"
  echo "clang-tidy found problems"
  exit 1
fi
rm -f "$out"
echo "lint ok"
