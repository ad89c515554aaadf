#!/usr/bin/env bash
# The test command (README "Tests"): builds in Release and runs every suite, then builds the
# unit tests under AddressSanitizer + UndefinedBehaviorSanitizer and runs them, then lints.
# Suites that need TimescaleDB skip with one loud line when the server does not offer it.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== release build and all tests"
cmake --preset release >/dev/null
cmake --build --preset release
ctest --preset release -j2

echo "== unit tests under ASan + UBSan"
cmake --preset asan-ubsan >/dev/null
cmake --build --preset asan-ubsan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan-ubsan -j2

echo "== lint"
scripts/lint.sh build
