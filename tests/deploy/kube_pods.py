#!/usr/bin/env python3
"""Turns the rendered Kubernetes manifests into what `podman kube play` (4.3) runs.

podman plays Pods and Deployments but neither Jobs, Services, Secrets nor ConfigMaps; this
does for them what Kubernetes would, and changes nothing else of the containers (commands,
env, init containers, securityContext, volumes, resources stay as written):
  - a Job becomes a Pod with its pod template's spec, named after the Job;
  - every env valueFrom a Secret or ConfigMap key becomes that value, taken from --values
    (a JSON object of key -> value: the Secret's and ConfigMap's keys, as a user fills them);
  - $(VAR) in command and args is expanded from the env, as the kubelet does;
  - a Service is replaced by a hostAliases entry (--host NAME=IP) in each pod;
  - the image is --image, never pulled;
  - containerPorts are dropped (podman would publish them on the host; Kubernetes does not),
    probes that name one get its number.

  kube_pods.py --manifests rendered.yml --values values.json --image IMAGE \
      [--only Deployment/backfill-coordinator ...] [--host backfill-coordinator=10.89.0.5] \
      [--prefix NAME-]
"""

import argparse
import json
import re
import sys

import yaml


def resolve_env(container, values):
    for entry in container.get("env") or []:
        ref = entry.pop("valueFrom", None)
        if ref is None:
            continue
        key_ref = ref.get("secretKeyRef") or ref.get("configMapKeyRef")
        if key_ref is None or key_ref["key"] not in values:
            sys.exit(f"kube_pods: no value for env {entry['name']} ({ref})")
        entry["value"] = values[key_ref["key"]]


def unpublish_ports(container):
    """Kubernetes never publishes a containerPort on the node; podman 4.3 publishes each on
    the host. Drop them, numbering the probes that named one."""
    numbers = {p.get("name"): p["containerPort"] for p in container.pop("ports", None) or []}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        for action in ("tcpSocket", "httpGet"):
            port = (container.get(probe) or {}).get(action, {}).get("port")
            if isinstance(port, str):
                container[probe][action]["port"] = numbers[port]


def expand_variables(container):
    """The kubelet's $(VAR) expansion in command and args, which podman 4.3 does not do."""
    env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
    for field in ("command", "args"):
        if field in container:
            container[field] = [
                re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), a)
                for a in container[field]]


def pod_spec(spec, values, image, hosts):
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        resolve_env(container, values)
        expand_variables(container)
        unpublish_ports(container)
        container["image"] = image
        container["imagePullPolicy"] = "Never"
    if hosts:
        spec["hostAliases"] = [{"ip": ip, "hostnames": [name]} for name, ip in hosts.items()]
    return spec


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", required=True)
    parser.add_argument("--values", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--only", action="append", default=[], help="KIND/NAME to keep")
    parser.add_argument("--host", action="append", default=[], help="NAME=IP")
    parser.add_argument("--prefix", default="", help="put before every pod's name")
    args = parser.parse_args()
    values = json.load(open(args.values))
    hosts = dict(h.split("=", 1) for h in args.host)
    out = []
    for obj in yaml.safe_load_all(open(args.manifests)):
        if not obj or (args.only and f"{obj['kind']}/{obj['metadata']['name']}" not in args.only):
            continue
        meta = {"name": args.prefix + obj["metadata"]["name"],
                "labels": obj["metadata"].get("labels", {})}
        if obj["kind"] == "Deployment":
            template = obj["spec"]["template"]
            pod_spec(template["spec"], values, args.image, hosts)
            obj["metadata"] = meta
            out.append(obj)
        elif obj["kind"] == "Job":
            template = obj["spec"]["template"]
            meta["labels"] = {**meta["labels"], **template.get("metadata", {}).get("labels", {})}
            meta["annotations"] = template.get("metadata", {}).get("annotations", {})
            out.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                        "spec": pod_spec(template["spec"], values, args.image, hosts)})
    if not out:
        sys.exit("kube_pods: nothing to play")
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
