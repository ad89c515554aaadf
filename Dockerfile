# Container image with all four programs: backfillctl, timescaledb-backfill (the same program
# under the original tool's name), backfill-coordinator and backfill-worker.
#
#   docker build -t timescaledb-backfill:local .
#   docker run --rm timescaledb-backfill:local backfillctl --version
#
# The image has no ENTRYPOINT: say which program to run (docker-compose.yml and
# deploy/kubernetes/ do). It holds no secrets; give the bearer token at run time with
# --token-file or BACKFILL_TOKEN, and database passwords in the connection strings or PG*
# environment variables. Built and run by tests/deploy/run.sh (scripts/test.sh runs it).

# ---- build: Debian's own packages, as scripts/setup.sh installs them ------------------------
FROM debian:bookworm AS build

# The test suites are not built (BACKFILL_BUILD_TESTS=OFF), so GoogleTest is not needed here.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev libgoogle-glog-dev libcli11-dev libpq-dev libzstd-dev prometheus-cpp-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the build reads, so that editing tests or docs does not rebuild the image.
COPY CMakeLists.txt CMakePresets.json ./
COPY cmake/ cmake/
COPY proto/ proto/
COPY common/ common/
COPY coordinator/ coordinator/
COPY worker/ worker/
COPY ctl/ ctl/
RUN cmake --preset release -DBACKFILL_BUILD_TESTS=OFF \
 && cmake --build --preset release

# ---- runtime: the shared libraries the programs link against, nothing else -----------------
FROM debian:bookworm-slim AS runtime

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      ca-certificates \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libgoogle-glog0v6 libpq5 libzstd1 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric id, so that Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --system --gid 10001 backfill \
 && useradd --system --uid 10001 --gid backfill --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin backfill

COPY --from=build /src/build/bin/backfillctl /src/build/bin/timescaledb-backfill \
     /src/build/bin/backfill-coordinator /src/build/bin/backfill-worker /usr/local/bin/

# Fails the build when a shared library is missing from the list above.
RUN backfillctl --version \
 && backfill-coordinator --help >/dev/null \
 && backfill-worker --help >/dev/null

USER 10001:10001
# 7433: the coordinator's gRPC port; 9464: Prometheus metrics (--metrics-listen).
EXPOSE 7433 9464
CMD ["backfillctl", "--help"]
