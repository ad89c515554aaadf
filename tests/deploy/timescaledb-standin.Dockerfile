# A stand-in for the public timescale/timescaledb image, which no registry reachable from CI
# serves: Debian's PostgreSQL 15 with the TimescaleDB build that is installed on the machine
# running the test (tests/deploy/run.sh copies its files into the build context; without
# TimescaleDB the context holds none, and this is a plain PostgreSQL server). Nothing here
# builds TimescaleDB. The entrypoint does what the public image's does on a first start:
# initdb with POSTGRES_PASSWORD, listen on every address, preload timescaledb.
FROM debian:bookworm
# The machine's PostgreSQL 15 package version (TimescaleDB's build needs the same release);
# empty, or gone from the mirror: the newest.
ARG POSTGRESQL_VERSION=

RUN mkdir -p /etc/postgresql-common \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && export DEBIAN_FRONTEND=noninteractive \
 && { apt-get install -y -q --no-install-recommends \
        "postgresql-15${POSTGRESQL_VERSION:+=$POSTGRESQL_VERSION}" \
      || { echo "*** postgresql-15=$POSTGRESQL_VERSION is no longer on the mirror: the newest ***" \
           && apt-get install -y -q --no-install-recommends postgresql-15; }; } \
 && rm -rf /var/lib/apt/lists/*

COPY lib/ /usr/lib/postgresql/15/lib/
COPY extension/ /usr/share/postgresql/15/extension/
COPY standin-entrypoint.sh /usr/local/bin/standin-entrypoint.sh

ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
RUN mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
USER postgres
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/standin-entrypoint.sh"]
CMD ["postgres"]
