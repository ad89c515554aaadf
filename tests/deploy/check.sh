#!/usr/bin/env bash
# Checks the deployment files with the tools that own their formats (CTest: deploy.check):
#   - yamllint (tests/deploy/yamllint.yaml) on docker-compose.yml and deploy/;
#   - `docker-compose config`: Compose's own parse and interpolation of docker-compose.yml;
#   - `kubectl kustomize deploy/kubernetes`, each rendered object validated against the
#     Kubernetes schema of its kind (tests/deploy/validate-manifests.mjs, kubernetes-models);
#   - every command line of both run through the program's own --check-args (check_args.py).
# The image itself is built and run by tests/deploy/run.sh.
#
#   tests/deploy/check.sh [BIN_DIR]       # BIN_DIR: where the programs are (build/bin)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin_dir=$(cd "${1:-$repo/build/bin}" && pwd)
cd "$repo"

for tool in yamllint docker-compose node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "deploy.check: $tool is not installed (scripts/setup.sh installs it)" >&2
    exit 1
  fi
done
# PyYAML comes with Debian's python3 (python3-yaml); a python3 earlier in PATH may lack it.
python=""
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c "import yaml" 2>/dev/null; then
    python=$candidate
    break
  fi
done
[ -n "$python" ] || { echo "deploy.check: no python3 with PyYAML (python3-yaml)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== yamllint"
yamllint --strict -c tests/deploy/yamllint.yaml docker-compose.yml deploy/

echo "== docker-compose config"
# The compose file insists on a password; any will do for rendering it.
mkdir -p "$tmp/compose"
cp docker-compose.yml "$tmp/compose/"
(cd "$tmp/compose" && POSTGRES_PASSWORD=check docker-compose config >"$tmp/compose.yml")
echo "docker-compose.yml renders"

echo "== Kubernetes schema"
# Two kustomizations: the target side's, and the source-side worker's (another cluster).
if command -v kubectl >/dev/null; then
  {
    kubectl kustomize deploy/kubernetes
    echo "---"
    kubectl kustomize deploy/kubernetes/source-side
  } >"$tmp/kubernetes.yml"
else
  echo "*** kubectl is not installed: validating deploy/kubernetes's files as they are, not rendered by kustomize ***"
  for file in deploy/kubernetes/*.yaml deploy/kubernetes/source-side/*.yaml; do
    [ "$(basename "$file")" = kustomization.yaml ] && continue
    cat "$file"
    echo "---"
  done >"$tmp/kubernetes.yml"
fi
# npm ci again whenever package-lock.json changed since the last install.
if [ ! -f tests/deploy/node_modules/.package-lock.json ] ||
  [ tests/deploy/package-lock.json -nt tests/deploy/node_modules/.package-lock.json ]; then
  (cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
node tests/deploy/validate-manifests.mjs <"$tmp/kubernetes.yml"

echo "== the programs' own argument parsers"
"$python" tests/deploy/check_args.py --bin-dir "$bin_dir" --compose "$tmp/compose.yml" \
  --kubernetes "$tmp/kubernetes.yml"
