#!/usr/bin/env bash
# The containers, built and run (README "Containers"): builds the image from the Dockerfile
# with podman on a Debian base made by debootstrap (no registry is reachable), runs
# `backfillctl --version` in it, then brings docker-compose.yml up through podman's Docker API
# with two workers: both must register with the coordinator and every metrics endpoint must
# answer. Where TimescaleDB is installed on this machine, a stand-in image packages it
# (tests/deploy/timescaledb-standin.Dockerfile) and a full stage, copy and verify runs through
# the containers, compared row for row; where it is not, the stack still comes up with plain
# PostgreSQL and one loud line says what was skipped. Everything it starts (containers,
# networks, volumes, the podman service) is removed on exit; the images stay as a cache.
#
#   tests/deploy/run.sh            # needs root, podman, runc, docker-compose, debootstrap, curl
#
# Outside CI a missing tool skips the whole step loudly; under CI=true it fails.
set -euo pipefail
# What this writes holds a password and a token: nobody else reads it.
umask 077
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${BACKFILL_DEPLOY_WORK:-/var/tmp/backfill-deploy-test}
mirror=${BACKFILL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
project=backfilldeploytest
# Names of what podman kube play starts, so that cleaning up never touches a user's own pods.
kube_prefix=backfilldeploytest-
app_image=localhost/timescaledb-backfill:local
standin_image=localhost/backfill-standin-timescaledb:pg15
# podman on these machines needs runc (crun fails on their cgroup layout) and higher ulimits.
export CONTAINERS_CONF=$repo/tests/deploy/containers.conf

started=$(date +%s)
step() { echo "== deploy: $* ($(($(date +%s) - started))s)"; }
fail() {
  echo "deploy: FAILED: $*" >&2
  exit 1
}

for tool in podman runc docker-compose debootstrap curl; do
  if ! command -v "$tool" >/dev/null; then
    [ "${CI:-}" = "true" ] && fail "$tool is not installed (scripts/setup.sh installs it)"
    echo "*** SKIPPING the container tests: $tool is not installed (scripts/setup.sh installs it) ***"
    exit 0
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  [ "${CI:-}" = "true" ] && fail "the container tests run podman as root"
  echo "*** SKIPPING the container tests: they run podman as root ***"
  exit 0
fi
# PyYAML comes with Debian's python3 (python3-yaml); a python3 earlier in PATH may lack it.
python_yaml=/usr/bin/python3
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c "import yaml" 2>/dev/null; then
    python_yaml=$candidate
    break
  fi
done
mkdir -p "$work"
# One run at a time: two would share the project, the socket and the work directory.
exec 9>"$work/lock"
flock --nonblock 9 || fail "another tests/deploy/run.sh holds $work/lock"

service_pid=""
compose_dir="$work/compose"
compose() { docker-compose --project-name "$project" --project-directory "$compose_dir" \
  --file "$compose_dir/docker-compose.yml" "$@"; }
# What a run (this one, or an earlier one that was killed) left of the project: containers,
# pods, volumes, the network. Compose first; podman's own commands for what Compose missed
# (a container in a restart loop).
remove_project() {
  if [ -n "$service_pid" ]; then
    compose down --volumes --remove-orphans --timeout 10 >/dev/null 2>&1 || true
  fi
  podman pod rm --force --ignore "${kube_prefix}backfill-coordinator-pod-0" \
    "${kube_prefix}backfill-worker" "${kube_prefix}backfill-copy" >/dev/null 2>&1 || true
  local ids
  ids=$(podman ps --all --quiet --filter "label=com.docker.compose.project=$project")
  if [ -n "$ids" ]; then podman rm --force $ids >/dev/null 2>&1 || true; fi
  ids=$(podman volume ls --quiet --filter "label=com.docker.compose.project=$project")
  if [ -n "$ids" ]; then podman volume rm --force $ids >/dev/null 2>&1 || true; fi
  podman network rm --force "${project}_default" >/dev/null 2>&1 || true
}
ticker_pid=""
cleanup() {
  local rc=$?
  # Every step of the cleanup runs, whatever fails before it.
  set +e +u
  if [ "${BACKFILL_DEPLOY_KEEP:-}" = 1 ]; then
    echo "deploy: BACKFILL_DEPLOY_KEEP=1: leaving the stack up (DOCKER_HOST=${DOCKER_HOST:-}, $compose_dir)"
    exit $rc
  fi
  [ -z "$ticker_pid" ] || kill "$ticker_pid" 2>/dev/null || true
  remove_project
  if [ -n "$service_pid" ]; then
    kill "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
  fi
  # Logs stay for a look afterwards; what holds the password or the token goes.
  rm -rf "$compose_dir" "$work/standin" "$work/values.json" "$work"/kube-*.yml
  exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# ---- the base image: debootstrap of Debian's mirror, imported as debian:bookworm(-slim) ----
if podman image exists localhost/debian:bookworm && podman image exists localhost/debian:bookworm-slim; then
  step "base image debian:bookworm already made by an earlier run (podman rmi localhost/debian:bookworm remakes it)"
else
  step "base image: debootstrap bookworm from $mirror"
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    fail "debootstrap failed; see $work/debootstrap.log"
  rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin
  # As Debian's own image: the point-release updates and the security archive too, where this
  # machine's PostgreSQL comes from.
  cat >"$work/rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${BACKFILL_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} bookworm-security main
EOF
  tar -C "$work/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - localhost/debian:bookworm >/dev/null
  podman tag localhost/debian:bookworm localhost/debian:bookworm-slim
  rm -rf "$work/rootfs"
fi

# ---- our image, from the Dockerfile unchanged ----
step "podman build of the Dockerfile"
podman build --quiet -t "$app_image" -f "$repo/Dockerfile" "$repo" >/dev/null
# docker-compose.yml names it timescaledb-backfill:local; the Docker API reads that as Docker Hub's.
podman tag "$app_image" docker.io/library/timescaledb-backfill:local
version=$(podman run --rm "$app_image" backfillctl --version)
echo "deploy: backfillctl --version in the image: $version"
case "$version" in
  "timescaledb-backfill "*) ;;
  *) fail "unexpected backfillctl --version in the image: $version" ;;
esac

# ---- the stand-in TimescaleDB image, with this machine's TimescaleDB build ----
step "stand-in TimescaleDB image"
rm -rf "$work/standin"
mkdir -p "$work/standin/lib" "$work/standin/extension"
cp "$repo/tests/deploy/timescaledb-standin.Dockerfile" "$repo/tests/deploy/standin-entrypoint.sh" "$work/standin/"
# PostgreSQL 15's own pg_config: the stand-in is PostgreSQL 15 whatever else is installed.
pg_config=/usr/lib/postgresql/15/bin/pg_config
[ -x "$pg_config" ] || pg_config=pg_config
pglib=$("$pg_config" --pkglibdir 2>/dev/null || true)
pgshare=$("$pg_config" --sharedir 2>/dev/null || true)
timescaledb=""
# BACKFILL_DEPLOY_WITHOUT_TIMESCALEDB=1 leaves it out even where it is installed, to try the
# path of a machine without it.
if [ "${BACKFILL_DEPLOY_WITHOUT_TIMESCALEDB:-}" != 1 ] && ls "$pglib"/timescaledb*.so >/dev/null 2>&1; then
  cp "$pglib"/timescaledb*.so "$work/standin/lib/"
  cp "$pgshare"/extension/timescaledb* "$work/standin/extension/"
  timescaledb=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$pgshare/extension/timescaledb.control")
fi
# The files go into the image as they are here: readable by its postgres user (umask 077 above).
chmod -R a+rX "$work/standin"
# The same PostgreSQL release as this machine's: TimescaleDB is built against it.
postgresql=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || true)
podman build --quiet -t "$standin_image" -f "$work/standin/timescaledb-standin.Dockerfile" \
  --build-arg "POSTGRESQL_VERSION=$postgresql" "$work/standin" >/dev/null

# ---- podman's Docker API, for docker-compose ----
step "podman system service"
rm -f "$work/podman.sock"
podman system service --time=0 "unix://$work/podman.sock" >"$work/podman-service.log" 2>&1 &
service_pid=$!
export DOCKER_HOST="unix://$work/podman.sock"
for _ in $(seq 100); do
  curl -sf --unix-socket "$work/podman.sock" http://d/_ping >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf --unix-socket "$work/podman.sock" http://d/_ping >/dev/null || fail "podman's API did not answer"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
grpc_port=$(free_port)
metrics_port=$(free_port)
rm -rf "$compose_dir"
mkdir -p -m 700 "$compose_dir/secrets"
cp "$repo/docker-compose.yml" "$compose_dir/"
(umask 022 && openssl rand -base64 32 >"$compose_dir/secrets/backfill_token")
{
  echo "POSTGRES_PASSWORD=$(openssl rand -hex 16)"
  echo "TIMESCALEDB_IMAGE=$standin_image"
  echo "BACKFILL_GRPC_PORT=$grpc_port"
  echo "BACKFILL_METRICS_PORT=$metrics_port"
} >"$compose_dir/.env"

step "docker-compose up with two workers"
remove_project
# podman runs healthchecks from systemd timers; where systemd does not run (containers, CI
# sandboxes) nothing would run them and `depends_on: service_healthy` would wait forever. Run
# them here every 2 seconds, as the timer would.
(
  while true; do
    for id in $(podman ps --quiet --filter "label=com.docker.compose.project=$project"); do
      podman healthcheck run "$id" >/dev/null 2>&1 || true
    done
    sleep 2
  done
) &
ticker_pid=$!
compose up --detach --no-build --scale worker=2 >"$work/compose-up.log" 2>&1 ||
  { cat "$work/compose-up.log"; fail "docker-compose up failed"; }

# Polls `what` (a command) until it succeeds, for at most `seconds`.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$(($(date +%s) + seconds))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || { compose logs --tail 40 >&2 || true; fail "$what"; }
    sleep 0.5
  done
}
coordinator_metrics() { curl -sf "http://127.0.0.1:$metrics_port/metrics"; }
two_workers() { coordinator_metrics | grep -x 'backfill_connected_workers 2' >/dev/null; }
wait_for 120 "two workers did not register with the coordinator" two_workers
echo "deploy: the coordinator sees 2 workers (backfill_connected_workers 2 on 127.0.0.1:$metrics_port)"
# Each worker's own endpoint, from inside it (bash's /dev/tcp: the image carries no curl).
for index in 1 2; do
  compose exec -T --index="$index" worker bash -c \
    'exec 3<>/dev/tcp/127.0.0.1/9464 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' \
    >"$work/worker-$index.metrics" || fail "worker $index's metrics did not answer"
  grep -q '^backfill_worker_tasks_in_progress' "$work/worker-$index.metrics" ||
    fail "worker $index's metrics lack backfill_worker_tasks_in_progress"
done
echo "deploy: both workers' metrics answer"
coordinator_metrics >"$work/coordinator.metrics"
python3 "$repo/tests/deploy/check_dashboard.py" --dashboard "$repo/deploy/grafana/backfill-dashboard.json" \
  --metrics "$work/coordinator.metrics" "$work/worker-1.metrics" >"$work/dashboard.log" ||
  { grep -v '^exported' "$work/dashboard.log"; fail "the Grafana dashboard queries metrics the containers do not export"; }
tail -n 1 "$work/dashboard.log"

if [ -z "$timescaledb" ]; then
  why="TimescaleDB is not installed in $pglib"
  [ "${BACKFILL_DEPLOY_WITHOUT_TIMESCALEDB:-}" != 1 ] || why="BACKFILL_DEPLOY_WITHOUT_TIMESCALEDB=1"
  echo "*** SKIPPING the backfills through the containers (docker-compose, podman kube play): $why ***"
  step "done (stack up, workers registered, metrics answer)"
  exit 0
fi

# ---- a whole backfill through the containers ----
step "a backfill through the containers (TimescaleDB $timescaledb)"
# The network's DNS (aardvark-dns) may answer for a new container's name a moment after it
# starts: wait until the databases' names resolve where the programs run.
resolves() { compose exec -T coordinator getent hosts source target >/dev/null 2>&1; }
wait_for 60 "the names source and target do not resolve in the compose network" resolves
# podman 4.3's aardvark-dns also stops answering for tens of seconds at times while containers
# come and go (`docker-compose run`): the connection strings carry each database's address
# (hostaddr) beside its name, so no lookup of theirs depends on it. The names still reach the
# programs (host=, for messages) and the workers still find the coordinator by name.
address_of() {
  podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "${project}_$1_1"
}
source_ip=$(address_of source)
target_ip=$(address_of target)
# psql_in SERVICE DB ARGS...: psql in that compose service's container.
psql_in() {
  local service=$1 db=$2
  shift 2
  compose exec -T "$service" psql -X -q -v ON_ERROR_STOP=1 -U postgres -d "$db" "$@"
}
# A hypertable of 51,840 rows in 6 daily chunks on the source, the first 3 compressed; the
# target prepared from the source's dumps as README "Preparing the target" says; and a row
# after --until that the application already wrote into the target (dual writes).
# VERSION: the TimescaleDB version of both sides (the default when empty).
prepare_databases() {
  local db=$1 version=${2:-}
  local create="CREATE EXTENSION IF NOT EXISTS timescaledb${version:+ VERSION '$version'};"
  psql_in source "$db" -c "$create" >/dev/null
  psql_in source "$db" >/dev/null <<'SQL'
CREATE TABLE public.metrics (time timestamptz NOT NULL, device int NOT NULL, value float8);
SELECT create_hypertable('public.metrics', 'time', chunk_time_interval => interval '1 day');
CREATE INDEX ON public.metrics (device, time DESC);
INSERT INTO public.metrics
  SELECT timestamptz '2024-01-01' + i * interval '10 seconds', i % 10, i * 0.5
  FROM generate_series(0, 6 * 8640 - 1) i;
ALTER TABLE public.metrics SET (timescaledb.compress, timescaledb.compress_segmentby = 'device');
SELECT count(compress_chunk(c)) FROM show_chunks('public.metrics', older_than => timestamptz '2024-01-04') c;
SQL
  {
    echo "$create"
    echo "SELECT public.timescaledb_pre_restore();"
    compose exec -T source pg_dump -U postgres -d "$db" --schema-only --no-tablespaces \
      --no-owner --no-privileges --quote-all-identifiers
    compose exec -T source pg_dump -U postgres -d "$db" --data-only --extension=timescaledb \
      --schema=_timescaledb_catalog 2>/dev/null
    echo "SELECT public.timescaledb_post_restore();"
  } >"$work/restore-$db.sql"
  psql_in target "$db" <"$work/restore-$db.sql" >"$work/restore-$db.log" 2>&1 ||
    { tail -n 20 "$work/restore-$db.log"; fail "preparing the target database $db failed"; }
  psql_in target "$db" -c "INSERT INTO public.metrics VALUES ('2024-01-07 00:00', 1, -1)" >/dev/null
}
# Source and target of `db` hold the same rows before --until, and the application's row after.
expect_copied() {
  local db=$1 how=$2
  rows() {
    psql_in "$1" "$db" -At -c \
      "SELECT count(*), sum(hashtext(m::text)::numeric) FROM public.metrics m WHERE time < '2024-01-07'"
  }
  local source_rows target_rows dual
  source_rows=$(rows source)
  target_rows=$(rows target)
  [ "$source_rows" = "$target_rows" ] || fail "$how: rows differ: source $source_rows, target $target_rows"
  case "$source_rows" in
    "51840|"*) ;;
    *) fail "$how: the source holds $source_rows, not the 51840 rows written" ;;
  esac
  dual=$(psql_in target "$db" -At -c "SELECT count(*) FROM public.metrics WHERE time >= '2024-01-07'")
  [ "$dual" = 1 ] || fail "$how: the target's own row after --until was touched: $dual rows"
  echo "deploy: $how: source and target hold the same 51840 rows (count, hash sum); the dual-written row is intact"
}

ctl() { compose run --rm -T backfillctl "$@"; }
# stage, copy and verify of database `db` through `docker-compose run backfillctl`.
backfill_through_compose() {
  local db=$1 how=$2
  local dbs=(--source "postgres://postgres@source/$db?hostaddr=$source_ip"
    --target "postgres://postgres@target/$db?hostaddr=$target_ip")
  local command
  for command in stage copy verify; do
    local extra=()
    [ "$command" = stage ] && extra=(--until 2024-01-07)
    ctl "$command" "${dbs[@]}" "${extra[@]}" >"$work/$command-$db.log" 2>&1 ||
      { cat "$work/$command-$db.log"; fail "$how: $command failed"; }
  done
  grep -m 1 "^Copied" "$work/copy-$db.log" | sed "s/^/deploy: $how: /" || true
  expect_copied "$db" "$how"
}
prepare_databases postgres
backfill_through_compose postgres "stage, copy, verify through docker-compose (TimescaleDB $timescaledb)"
for index in 1 2; do
  compose exec -T --index="$index" worker bash -c \
    'exec 3<>/dev/tcp/127.0.0.1/9464 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' |
    sed -n 's/^backfill_worker_chunks_total{.*outcome="copied".*} \(.*\)/deploy: worker '"$index"' copied \1 chunks/p'
done
# Every other TimescaleDB version the stand-in carries (this machine's), a database pair each.
for so in "$work/standin/lib"/timescaledb-[0-9]*.so; do
  version=$(basename "$so" .so)
  version=${version#timescaledb-}
  [ "$version" != "$timescaledb" ] || continue
  db="ts_${version//[^0-9a-zA-Z]/_}"
  psql_in source postgres -c "CREATE DATABASE \"$db\"" >/dev/null
  psql_in target postgres -c "CREATE DATABASE \"$db\"" >/dev/null
  prepare_databases "$db" "$version"
  backfill_through_compose "$db" "stage, copy, verify through docker-compose (TimescaleDB $version)"
done

# ---- the Kubernetes manifests, under podman kube play ----
step "deploy/kubernetes under podman kube play"
if ! command -v kubectl >/dev/null; then
  echo "*** SKIPPING podman kube play of deploy/kubernetes: kubectl (kustomize) is not installed ***"
  step "done"
  exit 0
fi
# A database of their own on the compose servers; their own coordinator (the Deployment), a
# worker (the worker Job's pod) and the copy Job's pod (stage, then copy), all on the compose
# network. The Service backfill-coordinator becomes a hosts entry of the coordinator pod's IP.
psql_in source postgres -c "CREATE DATABASE kube" >/dev/null
psql_in target postgres -c "CREATE DATABASE kube" >/dev/null
prepare_databases kube
kubectl kustomize "$repo/deploy/kubernetes" >"$work/kubernetes.yml"
password=$(sed -n 's/^POSTGRES_PASSWORD=//p' "$compose_dir/.env")
# The secrets reach python through its environment, never its arguments (ps shows those).
SOURCE_IP=$source_ip TARGET_IP=$target_ip BACKFILL_PASSWORD=$password \
  BACKFILL_TOKEN=$(cat "$compose_dir/secrets/backfill_token") \
  python3 - "$work/values.json" <<'PY'
import json, os, sys
path = sys.argv[1]
password, token = os.environ["BACKFILL_PASSWORD"], os.environ["BACKFILL_TOKEN"]
dsn = "host={} hostaddr={} dbname=kube user=postgres password=" + password
json.dump({"source": dsn.format("source", os.environ["SOURCE_IP"]),
           "target": dsn.format("target", os.environ["TARGET_IP"]), "token": token,
           "until": "2024-01-07T00:00:00Z"}, open(path, "w"))
PY
chmod 600 "$work/values.json"
kube_pods() { "$python_yaml" "$repo/tests/deploy/kube_pods.py" --manifests "$work/kubernetes.yml" \
  --values "$work/values.json" --image "$app_image" --prefix "$kube_prefix" "$@"; }
play() { podman kube play --network "${project}_default" "$1" >"$1.log" 2>&1 || { cat "$1.log"; fail "podman kube play $1"; }; }
kube_pods --only Deployment/backfill-coordinator >"$work/kube-coordinator.yml"
play "$work/kube-coordinator.yml"
infra=$(podman pod inspect --format '{{.InfraContainerID}}' "${kube_prefix}backfill-coordinator-pod-0")
coordinator_ip=$(podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$infra")
kube_pods --only Job/backfill-worker --host "backfill-coordinator=$coordinator_ip" >"$work/kube-worker.yml"
play "$work/kube-worker.yml"
kube_pods --only Job/backfill-copy --host "backfill-coordinator=$coordinator_ip" >"$work/kube-copy.yml"
play "$work/kube-copy.yml"
copy_exit=$(timeout 300 podman wait "${kube_prefix}backfill-copy-copy") || fail "the copy Job's pod did not finish in 300 s"
podman logs "${kube_prefix}backfill-copy-copy" 2>&1 | tail -n 2 | sed 's/^/deploy: kube copy: /'
[ "$copy_exit" = 0 ] || { podman logs "${kube_prefix}backfill-copy-stage" 2>&1 | tail -5; podman logs "${kube_prefix}backfill-copy-copy" 2>&1 | tail -5; fail "the copy Job's pod exited with $copy_exit"; }
expect_copied kube "the copy Job and a worker pod under podman kube play"
step "done"
