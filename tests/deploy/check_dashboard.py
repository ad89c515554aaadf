#!/usr/bin/env python3
"""Checks that every metric the Grafana dashboard queries is one the programs export.

Takes the metric names out of each panel's PromQL (deploy/grafana/backfill-dashboard.json) and
looks each up in what the programs really serve at /metrics: either exposition files given
with --metrics (tests/deploy/run.sh saves the containers'), or, with --bin-dir, a
backfill-coordinator and a backfill-worker started here on free loopback ports and scraped.

Prints each queried metric with where it was found; exits 1 if any is exported by neither.
"""

import argparse
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request

METRIC = re.compile(r"\b(backfill_[a-z_]+)\b")


def queried(dashboard):
    names = set()
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            names.update(METRIC.findall(target.get("expr", "")))
    return names


def exported(text):
    """Sample names of a Prometheus exposition: histograms show as _bucket, _sum, _count."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port, deadline):
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def scrape_local_programs(bin_dir):
    grpc, coordinator_metrics, worker_metrics = free_port(), free_port(), free_port()
    processes = [
        subprocess.Popen([f"{bin_dir}/backfill-coordinator", f"--listen=127.0.0.1:{grpc}",
                          f"--metrics-listen=127.0.0.1:{coordinator_metrics}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([f"{bin_dir}/backfill-worker", f"--coordinator=127.0.0.1:{grpc}",
                          f"--metrics-listen=127.0.0.1:{worker_metrics}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        deadline = time.monotonic() + 30
        return {"backfill-coordinator": scrape(coordinator_metrics, deadline),
                "backfill-worker": scrape(worker_metrics, deadline)}
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboard", required=True)
    parser.add_argument("--metrics", nargs="*", default=[], help="exposition files")
    parser.add_argument("--bin-dir", help="start the programs from here and scrape them")
    args = parser.parse_args()
    sources = {path: open(path).read() for path in args.metrics}
    if args.bin_dir:
        sources.update(scrape_local_programs(args.bin_dir))
    if not sources:
        parser.error("give --metrics files or --bin-dir")
    by_source = {source: exported(text) for source, text in sources.items()}
    names = queried(json.load(open(args.dashboard)))
    missing = 0
    for name in sorted(names):
        where = [source for source, found in by_source.items() if name in found]
        if where:
            print(f"exported  {name} ({', '.join(where)})")
        else:
            print(f"MISSING   {name}: the dashboard queries it, no program exports it")
            missing += 1
    print(f"check_dashboard: {len(names)} metrics queried, {missing} missing")
    return 1 if missing or not names else 0


if __name__ == "__main__":
    sys.exit(main())
