#!/usr/bin/env bash
# Installs what building and testing need, from Debian's packages (bookworm). Idempotent:
# does nothing when everything is already there. TimescaleDB is not among them: no Debian
# registry carries it; see README.md ("TimescaleDB").
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgoogle-glog-dev libcli11-dev libgtest-dev libgmock-dev libpq-dev libzstd-dev
  postgresql-15 postgresql-client-15
  prometheus-cpp-dev
  clang-format clang-tidy curl openssl iproute2 python3 python3-yaml
  # The containers (tests/deploy): podman with runc, Compose, a Debian base image, linting.
  podman runc conmon netavark aardvark-dns catatonit uidmap iptables
  golang-github-containers-common docker-compose debootstrap yamllint nodejs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# npm comes with nodesource's nodejs (these machines'); with Debian's it is a package of its own.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all build and test packages are installed"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
