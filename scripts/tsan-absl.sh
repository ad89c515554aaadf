#!/usr/bin/env bash
# Abseil built with ThreadSanitizer, for the tsan preset (scripts/test.sh). Debian's libabsl is
# not instrumented: TSan cannot see its mutexes, and reports every access they guard as a race
# (212 reports in the unit tests). This builds the upstream release Debian packages (its .orig
# tarball, from the Debian mirror apt uses) into build-tsan-absl/install, once (about 2 minutes
# on 2 cores). Prints the install prefix; exits 1, saying why, when the source cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$PWD/build-tsan-absl
prefix=$work/install
if [ -f "$prefix/lib/cmake/absl/abslConfig.cmake" ]; then
  echo "$prefix"
  exit 0
fi
version=$(dpkg-query -W -f='${Version}' libabsl-dev)  # e.g. 20220623.1-1+deb12u2
upstream=${version#*:}
upstream=${upstream%%-*}
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
url="$mirror/pool/main/a/abseil/abseil_${upstream}.orig.tar.gz"
rm -rf "$work"
mkdir -p "$work"
if ! curl -fsSL -o "$work/absl.tar.gz" "$url"; then
  echo "cannot download Abseil's source from $url" >&2
  exit 1
fi
tar -xzf "$work/absl.tar.gz" -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'abseil-*' | head -1)
{
  cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_STANDARD=17 \
    -DABSL_PROPAGATE_CXX_STD=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" -DCMAKE_INSTALL_PREFIX="$prefix"
  cmake --build "$work/build" -j2
  cmake --install "$work/build"
} >"$work/build.log" 2>&1 || {
  tail -20 "$work/build.log" >&2
  echo "cannot build Abseil with ThreadSanitizer (log: $work/build.log)" >&2
  exit 1
}
echo "$prefix"
