#!/usr/bin/env bash
# The test command (README "Tests"): builds in Release and runs every suite (the integration
# suites once per installed TimescaleDB version), then builds the unit tests under AddressSanitizer + UndefinedBehaviorSanitizer and runs them, then lints.
# Suites that need TimescaleDB skip with one loud line when the server does not offer it.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== release build and all tests"
cmake --preset release >/dev/null
cmake --build --preset release
ctest --preset release -j2

# The integration suites again on every other TimescaleDB version installed side by side
# (CREATE EXTENSION ... VERSION picks one per test database). The run above used the default,
# the newest installed.
pglib=$(pg_config --pkglibdir 2>/dev/null || true)
default_version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" \
  "$(pg_config --sharedir 2>/dev/null)/extension/timescaledb.control" 2>/dev/null || true)
for so in "$pglib"/timescaledb-[0-9]*.so; do
  [ -e "$so" ] || continue
  version=$(basename "$so" .so); version=${version#timescaledb-}
  [ "$version" = "$default_version" ] && continue
  echo "== integration suites on TimescaleDB $version"
  BACKFILL_TEST_TIMESCALEDB_VERSION=$version ctest --preset release -j2 -L integration
done

echo "== unit tests under ASan + UBSan"
cmake --preset asan-ubsan >/dev/null
cmake --build --preset asan-ubsan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan-ubsan -j2

echo "== lint"
scripts/lint.sh build
