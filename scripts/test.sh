#!/usr/bin/env bash
# The test command (README "Tests"): builds in Release and runs every suite (the integration
# suites once per installed TimescaleDB version), then builds and runs the unit tests under
# AddressSanitizer + UndefinedBehaviorSanitizer and under ThreadSanitizer, then lints.
# Suites that need TimescaleDB skip with one loud line when the server does not offer it.
set -euo pipefail
cd "$(dirname "$0")/.."

# ctest shows only failing tests' output: after each run, print the loud "*** SKIPPING" lines
# of suites that skipped and count the skipped tests, for the closing line.
skipped_total=0
report_skips() {
  local log="$1/Testing/Temporary/LastTest.log" label="$2" skipped=0
  if [ -f "$log" ]; then
    grep -h '\*\*\* SKIPPING' "$log" | sort -u || true
    skipped=$(grep -cE '^\[  SKIPPED \] [A-Za-z_/]+\.[^ ]+ \([0-9]+ ms\)$' "$log" || true)
  fi
  echo "== $label: $skipped tests skipped"
  skipped_total=$((skipped_total + skipped))
}

echo "== release build and all tests"
cmake --preset release >/dev/null
cmake --build --preset release
ctest --preset release -j2
report_skips build "release"

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
  report_skips build "integration suites on TimescaleDB $version"
done

echo "== containers: the image, the Compose stack and a backfill through it"
# Needs root and podman (scripts/setup.sh); outside CI it skips loudly without them.
tests/deploy/run.sh

echo "== unit tests under ASan + UBSan"
cmake --preset asan-ubsan >/dev/null
cmake --build --preset asan-ubsan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan-ubsan -j2
report_skips build-asan "unit tests under ASan + UBSan"

echo "== unit tests under ThreadSanitizer"
# Needs Abseil built with TSan (Debian's is not instrumented): scripts/tsan-absl.sh builds it
# once from Debian's source.
if scripts/tsan-absl.sh >/dev/null; then
  cmake --preset tsan >/dev/null
  cmake --build --preset tsan
  ctest --preset tsan -j2
  report_skips build-tsan "unit tests under TSan"
else
  echo "*** SKIPPING the unit tests under ThreadSanitizer: no Abseil built with TSan (above) ***"
fi

echo "== lint"
scripts/lint.sh build
echo "== all tests passed; $skipped_total tests skipped in all"
