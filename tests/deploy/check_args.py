#!/usr/bin/env python3
"""Runs every command line of the deployment files through the program's own --check-args.

Reads the rendered files, never the sources: `docker-compose config` output (--compose) and
`kubectl kustomize` output (--kubernetes). For each Compose service and each Kubernetes
container (init containers too) whose command starts with one of our programs, it runs that
command from --bin-dir with --check-args appended, so the program's own parser decides, with
its real subcommands, required flags, ranges and connection-string checks. A Kubernetes
$(VAR) is replaced by the container's env value: a literal, or the Secret or ConfigMap key it
refers to; the program runs with that env (so BACKFILL_TOKEN counts). Where the manifests
hold a template placeholder (REPLACE_ME), the value comes from EXAMPLES, a value of the kind a
user would put there. A line with --help is refused (it answers before any check), so the
one-shot backfillctl service is checked with the commands the docs run through it.

Prints one line per command line and exits 1 if any is refused.
"""

import argparse
import os
import re
import subprocess
import sys

import yaml

PROGRAMS = ("backfillctl", "timescaledb-backfill", "backfill-coordinator", "backfill-worker")
# What a user puts where the templates say REPLACE_ME, by Secret or ConfigMap key.
EXAMPLES = {
    "source": "host=source.example.com port=5432 dbname=metrics user=backfill sslmode=require",
    "target": "host=target.example.com port=5432 dbname=metrics user=backfill sslmode=require",
    "until": "2024-01-01T00:00:00Z",
    "token": "example-token",
}


# What the compose file says to run with its one-shot backfillctl service (its own command is
# --help): the lines of its header and deploy/README.md, after the service's entrypoint.
COMPOSE_CTL_COMMANDS = [
    ["stage", "--source", "postgres://postgres@source/postgres",
     "--target", "postgres://postgres@target/postgres", "--until", "2024-01-01"],
    ["copy", "--source", "postgres://postgres@source/postgres",
     "--target", "postgres://postgres@target/postgres"],
    ["verify", "--source", "postgres://postgres@source/postgres",
     "--target", "postgres://postgres@target/postgres"],
    ["clean", "--target", "postgres://postgres@target/postgres"],
]


def check(bin_dir, where, argv, env):
    if not argv or os.path.basename(argv[0]) not in PROGRAMS:
        return True
    shown = " ".join(argv)
    if "--help" in argv or "-h" in argv:
        # --help answers before any check: it would pass whatever else the line says.
        print(f"REFUSED  {where}: {shown}: --help would pass without checking the rest")
        return False
    program = os.path.join(bin_dir, os.path.basename(argv[0]))
    # The container's environment, as the program there gets it (BACKFILL_TOKEN, PG*).
    result = subprocess.run([program] + argv[1:] + ["--check-args"], capture_output=True,
                            text=True, timeout=30, env={"PATH": "/usr/bin:/bin", **env})
    if result.returncode == 0:
        print(f"valid    {where}: {shown}")
        return True
    why = (result.stderr or result.stdout).strip().splitlines()
    print(f"REFUSED  {where}: {shown}: {why[0] if why else f'exit {result.returncode}'}")
    return False


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else ["/bin/sh", "-c", value]


def compose_commands(path):
    config = yaml.safe_load(open(path))
    for name, service in (config.get("services") or {}).items():
        env = {k: str(v) for k, v in (service.get("environment") or {}).items() if v is not None}
        entrypoint = as_list(service.get("entrypoint"))
        command = as_list(service.get("command"))
        if entrypoint and command == ["--help"]:
            for documented in COMPOSE_CTL_COMMANDS:
                yield f"compose service {name} ({documented[0]})", entrypoint + documented, env
        else:
            yield f"compose service {name}", entrypoint + command, env


def key_values(objects):
    """(kind, name, key) -> value of every Secret and ConfigMap."""
    values = {}
    for obj in objects:
        if obj.get("kind") not in ("Secret", "ConfigMap"):
            continue
        data = dict(obj.get("stringData") or {})
        if obj["kind"] == "ConfigMap":
            data.update(obj.get("data") or {})
        for key, value in data.items():
            if "REPLACE_ME" in str(value):
                value = EXAMPLES.get(key, value)
            values[(obj["kind"], obj["metadata"]["name"], key)] = str(value)
    return values


def env_value(entry, values):
    if "value" in entry:
        return str(entry["value"])
    ref = entry.get("valueFrom") or {}
    for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
        if field in ref:
            return values.get((kind, ref[field]["name"], ref[field]["key"]), "")
    return ""


def pod_specs(obj):
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        yield spec
    elif "template" in spec:
        yield spec["template"].get("spec") or {}
    elif "jobTemplate" in spec:
        yield spec["jobTemplate"]["spec"]["template"].get("spec") or {}


def kubernetes_commands(path):
    objects = [o for o in yaml.safe_load_all(open(path)) if o]
    values = key_values(objects)
    for obj in objects:
        for spec in pod_specs(obj):
            for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
                env = {e["name"]: env_value(e, values) for e in container.get("env") or []}
                argv = [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                               lambda m: env.get(m.group(1), m.group(0)), a)
                        for a in (container.get("command") or []) + (container.get("args") or [])]
                yield (f"{obj['kind']} {obj['metadata']['name']} container {container['name']}",
                       argv, env)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", default="build/bin")
    parser.add_argument("--compose", required=True, help="output of `docker-compose config`")
    parser.add_argument("--kubernetes", required=True, help="output of `kubectl kustomize`")
    args = parser.parse_args()
    ok = True
    checked = 0
    for where, argv, env in list(compose_commands(args.compose)) + list(
            kubernetes_commands(args.kubernetes)):
        if argv and os.path.basename(argv[0]) in PROGRAMS:
            checked += 1
        ok = check(args.bin_dir, where, argv, env) and ok
    if checked == 0:
        print("REFUSED  no command line runs one of our programs")
        ok = False
    print(f"check_args: {checked} command lines, {'all valid' if ok else 'some refused'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
