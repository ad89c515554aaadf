#!/usr/bin/env python3
"""Checks the deployment files against the programs they run.

What it reads:
  - docker-compose.yml (--compose),
  - every YAML document under deploy/kubernetes/ (--kubernetes-dir),
  - the Dockerfile (--dockerfile),
and the `--help` output of the four programs in --bin-dir (default build/bin): backfillctl,
timescaledb-backfill, backfill-coordinator and backfill-worker.

What it checks:
  - every YAML file parses; Compose services have an image or a build, and the secrets and
    services they name exist; Kubernetes documents have apiVersion, kind and metadata.name,
    and the containers of Deployments, Jobs and the like have an image; $(VAR) references in a
    container's command or args name one of its env variables; a pod's prometheus.io/port
    annotation matches the port its --metrics-listen gives; kustomization resources exist;
  - every command line that runs one of the four programs (Compose entrypoint + command and
    healthchecks, Kubernetes command + args and exec probes, the Dockerfile's RUN, CMD and
    ENTRYPOINT, `sh -c` scripts inside any of these): each --flag and -x after the program's
    name is in its `--help`; after a subcommand of backfillctl or timescaledb-backfill (taken
    from the top-level `--help`) in `<program> <subcommand> --help` or, as CLI11's fallthrough
    allows, in the top-level one; subcommands exist; flags marked REQUIRED are given;
  - the Dockerfile: known instructions only, every FROM is Debian bookworm based (or an
    earlier stage), and every program it COPYs exists in --bin-dir.

Prints one line per problem and exits 1 if there is any (2 on bad usage); otherwise prints
`check_deploy: F files, N command lines, 0 problems`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Iterable, Optional

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    print(f"check_deploy: PyYAML is missing for {sys.executable}: install python3-yaml "
          "(scripts/setup.sh)", file=sys.stderr)
    sys.exit(2)

PROGRAMS = ("backfillctl", "timescaledb-backfill", "backfill-coordinator", "backfill-worker")

DOCKERFILE_INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}

# Kinds whose pods are described by a template, and where the pod spec sits in them.
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}

SHELL_CONTROL = {"&&", "||", ";", "|", "&", ";;", "(", ")", "{", "}", "!"}
REDIRECTION = re.compile(r"^(?:\d+|&)?(?:>>?|<<?|>&|<&|>\|)(.*)$")


# ---------------------------------------------------------------------------------------------
# Problems


class Problems:
    """Collects one line per problem, in the order found."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.lines.append(f"{where}: {message}")

    def __len__(self) -> int:
        return len(self.lines)


# ---------------------------------------------------------------------------------------------
# The programs' --help


@dataclass
class Option:
    names: list[str]  # as --help lists them, e.g. ["-u", "--until"]
    takes_value: bool
    required: bool


@dataclass
class Help:
    """What `<program> [subcommand] --help` says: options, subcommands, positionals."""

    options: list[Option] = field(default_factory=list)
    subcommands: list[str] = field(default_factory=list)
    has_positionals: bool = False

    def find(self, name: str) -> Optional[Option]:
        for option in self.options:
            if name in option.names:
                return option
        return None


# A value type in CLI11's help: TEXT, INT, INT:INT, TEXT=127.0.0.1:7433 (with its default), ...
VALUE_TYPE = re.compile(r"^[A-Z][A-Z0-9_]*(?::[A-Z0-9_]+)*(?:=\S*)?$")


def parse_help(text: str) -> Help:
    """Parses CLI11's help layout: sections `Options:`, `Subcommands:`, `Positionals:`, whose
    entries are indented by two spaces (deeper lines continue a description)."""
    help_ = Help()
    section = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            section = line.strip().rstrip(":").lower() if line.rstrip().endswith(":") else ""
            continue
        indent = len(line) - len(line.lstrip())
        if indent > 8:  # a description continued on its own line
            continue
        words = line.split()
        if section == "options" and words[0].startswith("-"):
            names = [n for n in words[0].split(",") if n.startswith("-")]
            rest = words[1:]
            # An option CLI11 can also take from the environment is not really required.
            required = "REQUIRED" in rest[:4] and "(Env:" not in line
            takes_value = bool(rest) and rest[0] != "REQUIRED" and bool(VALUE_TYPE.match(rest[0]))
            help_.options.append(Option(names, takes_value, required))
        elif section == "subcommands":
            help_.subcommands.append(words[0])
        elif section == "positionals":
            help_.has_positionals = True
    return help_


class HelpCache:
    """Runs `<program> [subcommand] --help` from --bin-dir once each and keeps what it says."""

    def __init__(self, bin_dir: str, problems: Problems) -> None:
        self.bin_dir = bin_dir
        self.problems = problems
        self.cache: dict[tuple[str, str], Optional[Help]] = {}

    def path(self, program: str) -> str:
        return os.path.join(self.bin_dir, program)

    def get(self, program: str, subcommand: str = "") -> Optional[Help]:
        key = (program, subcommand)
        if key not in self.cache:
            self.cache[key] = self._run(program, subcommand)
        return self.cache[key]

    def _run(self, program: str, subcommand: str) -> Optional[Help]:
        path = self.path(program)
        shown = " ".join(filter(None, [path, subcommand, "--help"]))
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            if not subcommand:
                self.problems.add(path, "no such program (build first, or pass --bin-dir)")
            return None
        argv = [path] + ([subcommand] if subcommand else []) + ["--help"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as e:
            self.problems.add(shown, f"cannot run: {e}")
            return None
        if done.returncode != 0:
            self.problems.add(shown, f"exited with {done.returncode}: {done.stderr.strip()}")
            return None
        return parse_help(done.stdout)


# ---------------------------------------------------------------------------------------------
# Command lines


@dataclass
class CommandLine:
    where: str  # file and place, for problem lines
    argv: list[str]  # as the program would get it, or the words of a shell script
    shell: bool = False  # argv came from shell text: operators end a command
    env: Optional[set[str]] = None  # Kubernetes: the variables $(VAR) may name


def shell_words(text: str, where: str, problems: Problems) -> Optional[list[str]]:
    """Splits shell text into words as sh would (quotes, escapes, comments)."""
    try:
        lexer = shlex.shlex(text, posix=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        return list(lexer)
    except ValueError as e:
        problems.add(where, f"cannot split shell text ({e}): {text!r}")
        return None


def as_argv(value, where: str, problems: Problems) -> list[str]:
    """A Compose/Dockerfile command: a list (exec form) or a string (split like a shell)."""
    if value is None:
        return []
    if isinstance(value, str):
        return shell_words(value, where, problems) or []
    if isinstance(value, list):
        return [str(v) for v in value]
    problems.add(where, f"expected a string or a list, got {type(value).__name__}")
    return []


def is_program(word: str) -> Optional[str]:
    name = os.path.basename(word)
    return name if name in PROGRAMS else None


def is_dynamic(word: str) -> bool:
    """A word whose value is only known at run time ($VAR, "$@", ${X}, $(X))."""
    return word.startswith("$")


def split_invocations(line: CommandLine, problems: Problems) -> list[tuple[str, list[str]]]:
    """Finds each run of one of our programs in `line`: (program, the words after it).

    In shell text a command ends at an operator (&&, ;, |, ...) and redirections are dropped.
    A word holding a whole script (`sh -c "..."`) that names one of our programs is split and
    searched too."""
    found: list[tuple[str, list[str]]] = []
    current: Optional[list[str]] = None  # the words after the program being read

    def take(word: str) -> None:
        nonlocal current
        if current is not None:
            current.append(word)
        elif any(c.isspace() for c in word) and any(p in word for p in PROGRAMS):
            script = shell_words(word, line.where, problems)
            if script is not None:
                found.extend(split_invocations(
                    CommandLine(line.where, script, True, line.env), problems))
        elif is_program(word):
            current = []
            found.append((is_program(word), current))

    words = iter(line.argv)
    for word in words:
        if not line.shell:
            take(word)
            continue
        if word in SHELL_CONTROL:
            current = None
            continue
        ends = word.endswith(";")  # `cmd --flag;`
        bare = word.rstrip(";")
        redirect = REDIRECTION.match(bare)
        if redirect:
            if not redirect.group(1) and not ends:
                next(words, None)  # the redirection's target
        elif bare:
            take(bare)
        if ends:
            current = None
    return found


def check_invocation(where: str, program: str, args: list[str], helps: HelpCache,
                     problems: Problems) -> None:
    """Checks the flags, subcommand and required options of one run of `program`."""
    top = helps.get(program)
    if top is None:
        return
    subcommand = ""
    current = top  # the help the next flag is looked up in (then in `top`: fallthrough)
    informational = False  # --help or --version: required options do not matter
    given: list[Option] = []

    def lookup(name: str) -> Optional[Option]:
        option = current.find(name)
        if option is None and current is not top:
            option = top.find(name)
        return option

    def unknown(name: str) -> None:
        shown = f"{program} {subcommand}".strip()
        problems.add(where, f"{shown}: unknown flag {name} (not in `{shown} --help`)")

    def past_guessed_value(index: int) -> int:
        """After an unknown flag: skips args[index] when it looks like that flag's value, so
        that it is not reported again as an unexpected argument."""
        if index < len(args) and not args[index].startswith("-") and not (
                top.subcommands and not subcommand and args[index] in top.subcommands):
            return index + 1
        return index

    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            break
        if is_dynamic(word):
            continue
        if word.startswith("--"):
            name, has_value, _ = word.partition("=")
            option = lookup(name)
            if option is None:
                unknown(name)
                if not has_value:
                    i = past_guessed_value(i)
                continue
            given.append(option)
            informational |= name in ("--help", "--version")
            if option.takes_value and not has_value:
                i += 1  # its value
            continue
        if word.startswith("-") and len(word) > 1 and not re.match(r"^-[0-9.]", word):
            for j in range(1, len(word)):  # -v, -vv, -UD, -p8
                option = lookup("-" + word[j])
                if option is None:
                    unknown("-" + word[j])
                    if j == len(word) - 1:
                        i = past_guessed_value(i)
                    break
                given.append(option)
                informational |= word[j] in ("h", "V")
                if option.takes_value:
                    if j == len(word) - 1:
                        i += 1  # its value is the next word
                    break
            continue
        # A positional word.
        if top.subcommands and not subcommand:
            if word in top.subcommands:
                subcommand = word
                current = helps.get(program, subcommand) or Help()
            else:
                problems.add(where, f"{program}: unknown subcommand {word!r} (known: "
                                    f"{', '.join(top.subcommands)})")
                return
        elif not current.has_positionals:
            shown = f"{program} {subcommand}".strip()
            problems.add(where, f"{shown}: unexpected argument {word!r}")

    if informational:
        return
    needed = [] if top.subcommands and not subcommand else current.options
    if current is not top:
        needed = needed + top.options
    for option in needed:
        if option.required and option not in given:
            shown = f"{program} {subcommand}".strip()
            problems.add(where, f"{shown}: required flag {option.names[-1]} is missing")


def check_command_lines(lines: Iterable[CommandLine], helps: HelpCache,
                        problems: Problems) -> int:
    """Checks every run of our programs in `lines`; returns how many there were."""
    count = 0
    for line in lines:
        if line.env is not None:
            check_env_references(line, problems)
        for program, args in split_invocations(line, problems):
            count += 1
            check_invocation(line.where, program, args, helps, problems)
    return count


def check_env_references(line: CommandLine, problems: Problems) -> None:
    """Kubernetes expands $(VAR) in command and args only for the container's own env
    variables and passes any other one on as it is: report those."""
    for word in line.argv:
        for var in re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", word):
            if var not in line.env:
                problems.add(line.where, f"{word!r}: $({var}) is not in the container's env")


# ---------------------------------------------------------------------------------------------
# YAML


def load_yaml(path: str, problems: Problems) -> Optional[list]:
    """All documents of a YAML file (None ones dropped), or None after reporting why not."""
    try:
        with open(path, encoding="utf-8") as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except OSError as e:
        problems.add(path, f"cannot read: {e.strerror}")
    except yaml.YAMLError as e:
        problems.add(path, f"not valid YAML: {' '.join(str(e).split())}")
    return None


def dig(node, *keys):
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


# ---------------------------------------------------------------------------------------------
# docker-compose.yml


def check_compose(path: str, problems: Problems) -> list[CommandLine]:
    """Checks the Compose file's structure; returns its command lines."""
    docs = load_yaml(path, problems)
    if docs is None:
        return []
    if len(docs) != 1 or not isinstance(docs[0], dict):
        problems.add(path, "expected one YAML mapping")
        return []
    compose = docs[0]
    services = compose.get("services")
    if not isinstance(services, dict) or not services:
        problems.add(path, "no services")
        return []
    base = os.path.dirname(os.path.abspath(path))
    secrets = compose.get("secrets") or {}
    lines = []
    for name, service in services.items():
        where = f"{path}: services.{name}"
        if not isinstance(service, dict):
            problems.add(where, "expected a mapping")
            continue
        if not service.get("image") and not service.get("build"):
            problems.add(where, "has neither image nor build")
        build = service.get("build")
        if isinstance(build, (str, dict)):
            context = build if isinstance(build, str) else str(build.get("context") or ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else str(
                build.get("dockerfile") or "Dockerfile")
            context_dir = os.path.join(base, context)
            if not os.path.isdir(context_dir):
                problems.add(where, f"build context {context} is not a directory")
            elif not os.path.isfile(os.path.join(context_dir, dockerfile)):
                problems.add(where, f"build: no {dockerfile} in {context}")
        for secret in service.get("secrets") or []:
            secret_name = secret.get("source") if isinstance(secret, dict) else secret
            if secret_name not in secrets:
                problems.add(where, f"secret {secret_name!r} is not defined under secrets:")
        depends = service.get("depends_on") or []
        for other in depends:
            if other not in services:
                problems.add(where, f"depends_on names no service: {other!r}")
        argv = as_argv(service.get("entrypoint"), where + ".entrypoint", problems) + as_argv(
            service.get("command"), where + ".command", problems)
        if argv:
            place = "entrypoint+command" if service.get("entrypoint") else "command"
            lines.append(CommandLine(f"{where}.{place}", argv))
        # healthcheck.test: ["CMD", argv...], ["CMD-SHELL", script] or a script.
        test = dig(service, "healthcheck", "test")
        script = None
        if isinstance(test, list) and test and test[0] == "CMD":
            lines.append(CommandLine(f"{where}.healthcheck", [str(t) for t in test[1:]]))
        elif isinstance(test, list) and test and test[0] == "CMD-SHELL":
            script = " ".join(str(t) for t in test[1:])
        elif isinstance(test, str):
            script = test
        if script is not None:
            words = shell_words(script, f"{where}.healthcheck", problems)
            if words is not None:
                lines.append(CommandLine(f"{where}.healthcheck", words, shell=True))
    return lines


# ---------------------------------------------------------------------------------------------
# Kubernetes


def container_lines(where: str, container: dict) -> list[CommandLine]:
    """command + args of a container, and the exec commands of its probes and hooks."""
    env = {e.get("name") for e in container.get("env") or [] if isinstance(e, dict)}
    known_env = None if container.get("envFrom") else env
    lines = []
    argv = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    if argv:
        lines.append(CommandLine(where, argv, env=known_env))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        command = dig(container, probe, "exec", "command")
        if command:
            lines.append(CommandLine(f"{where}.{probe}", [str(w) for w in command],
                                     env=known_env))
    for hook in ("postStart", "preStop"):
        command = dig(container, "lifecycle", hook, "exec", "command")
        if command:
            lines.append(CommandLine(f"{where}.lifecycle.{hook}", [str(w) for w in command],
                                     env=known_env))
    return lines


def metrics_ports(argv: list[str]) -> list[str]:
    """The ports --metrics-listen gives in a command line (either spelling), `sh -c` scripts
    included."""
    ports = []
    for i, word in enumerate(argv):
        if any(c.isspace() for c in word) and "--metrics-listen" in word:
            ports += metrics_ports(shell_words(word, "", Problems()) or [])
            continue
        value = None
        if word.startswith("--metrics-listen="):
            value = word.partition("=")[2]
        elif word == "--metrics-listen" and i + 1 < len(argv):
            value = argv[i + 1]
        if value and ":" in value:
            ports.append(value.rsplit(":", 1)[1])
    return ports


def check_pod_spec(where: str, template: Optional[dict], pod: dict,
                   problems: Problems) -> list[CommandLine]:
    lines = []
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        problems.add(where, "pod spec has no containers")
        return []
    for key in ("initContainers", "containers"):
        for container in pod.get(key) or []:
            if not isinstance(container, dict):
                problems.add(where, f"{key}: expected a mapping")
                continue
            name = container.get("name")
            here = f"{where} {key}[{name}]"
            if not name:
                problems.add(here, "container without a name")
            if not container.get("image"):
                problems.add(here, "container without an image")
            lines += container_lines(here, container)
    annotations = dig(template, "metadata", "annotations") or {}
    if str(annotations.get("prometheus.io/scrape", "")).lower() == "true":
        port = str(annotations.get("prometheus.io/port", ""))
        if not port.isdigit():
            problems.add(where, "prometheus.io/scrape without a numeric prometheus.io/port")
        for line in lines:
            for listen_port in metrics_ports(line.argv):
                if port.isdigit() and listen_port != port:
                    problems.add(line.where, f"--metrics-listen port {listen_port} is not the "
                                             f"prometheus.io/port annotation {port}")
    return lines


def check_kubernetes_doc(path: str, index: int, doc, problems: Problems) -> list[CommandLine]:
    where = f"{path}[{index}]"
    if not isinstance(doc, dict):
        problems.add(where, "expected a mapping")
        return []
    kind = doc.get("kind")
    if kind == "Kustomization":
        base = os.path.dirname(path)
        for resource in doc.get("resources") or []:
            if "://" not in str(resource) and not os.path.exists(os.path.join(base, resource)):
                problems.add(where, f"kustomization resource {resource} does not exist")
        return []
    for key in ("apiVersion", "kind"):
        if not isinstance(doc.get(key), str) or not doc.get(key):
            problems.add(where, f"missing {key}")
    name = dig(doc, "metadata", "name")
    if not isinstance(name, str) or not name:
        problems.add(where, "missing metadata.name")
    where = f"{path}: {kind}/{name}"
    if kind not in POD_SPEC_PATHS:
        return []
    spec_path = POD_SPEC_PATHS[kind]
    pod = dig(doc, *spec_path)
    template = doc if kind == "Pod" else dig(doc, *spec_path[:-1])
    if not isinstance(pod, dict):
        problems.add(where, f"missing {'.'.join(spec_path)}")
        return []
    return check_pod_spec(where, template, pod, problems)


def kubernetes_files(directory: str) -> list[str]:
    files = []
    for root, _dirs, names in os.walk(directory):
        files += [os.path.join(root, n) for n in names if n.endswith((".yaml", ".yml"))]
    return sorted(files)


def check_kubernetes(directory: str, problems: Problems) -> tuple[int, list[CommandLine]]:
    """Checks every YAML document under `directory`; returns (files, command lines)."""
    if not os.path.isdir(directory):
        problems.add(directory, "no such directory")
        return 0, []
    files = kubernetes_files(directory)
    if not files:
        problems.add(directory, "no YAML files")
    lines = []
    for path in files:
        docs = load_yaml(path, problems)
        for index, doc in enumerate(docs or []):
            lines += check_kubernetes_doc(path, index, doc, problems)
    return len(files), lines


# ---------------------------------------------------------------------------------------------
# Dockerfile


@dataclass
class Instruction:
    line: int  # where it starts, 1-based
    keyword: str  # upper case
    text: str  # the rest, continuation lines joined
    heredocs: list[str] = field(default_factory=list)  # bodies of <<EOF documents


def dockerfile_instructions(path: str, problems: Problems) -> list[Instruction]:
    """Splits a Dockerfile into instructions: comments and blank lines dropped, lines ending in
    a backslash joined, here-documents (RUN <<EOF ... EOF) collected."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = f.read().splitlines()
    except OSError as e:
        problems.add(path, f"cannot read: {e.strerror}")
        return []
    instructions = []
    i = 0
    while i < len(raw):
        start = i
        line = raw[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [line]
        while parts[-1].rstrip().endswith("\\") and i < len(raw):
            parts[-1] = parts[-1].rstrip()[:-1]
            # Comment and blank lines inside a continued instruction are dropped.
            while i < len(raw) and (not raw[i].strip() or raw[i].lstrip().startswith("#")):
                i += 1
            if i < len(raw):
                parts.append(raw[i])
                i += 1
        text = " ".join(p.strip() for p in parts).strip()
        keyword, _, rest = text.partition(" ")
        instruction = Instruction(start + 1, keyword.upper(), rest.strip())
        for strip_tabs, word in re.findall(r"<<(-?)[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?", rest):
            body = []
            while i < len(raw):
                body_line = raw[i]
                i += 1
                if (body_line.lstrip("\t") if strip_tabs else body_line) == word:
                    break
                body.append(body_line)
            else:
                problems.add(f"{path}:{start + 1}", f"here-document {word} is not closed")
            instruction.heredocs.append("\n".join(body))
        instructions.append(instruction)
    return instructions


def exec_form(text: str) -> Optional[list[str]]:
    """The JSON array of an exec-form instruction, or None for shell form."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def strip_flags(text: str) -> tuple[dict[str, str], str]:
    """Splits the leading --name=value flags of COPY, ADD, FROM and RUN off `text`."""
    flags = {}
    while text.startswith("--"):
        flag, _, text = text.partition(" ")
        name, _, value = flag[2:].partition("=")
        flags[name] = value
        text = text.lstrip()
    return flags, text


def substitute(text: str, args: dict[str, str]) -> str:
    """Replaces $NAME and ${NAME} by the ARG defaults that are known."""
    def value(match):
        name = match.group(1) or match.group(2)
        return args.get(name, match.group(0))
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", value, text)


def check_dockerfile(path: str, bin_dir: str, problems: Problems) -> list[CommandLine]:
    """Checks instructions, base images and copied programs; returns the command lines."""
    instructions = dockerfile_instructions(path, problems)
    if not instructions:
        if os.path.exists(path):
            problems.add(path, "no instructions")
        return []
    lines: list[CommandLine] = []
    global_args: dict[str, str] = {}
    stages: list[str] = []
    # The last ENTRYPOINT and CMD of the current stage, as argv; and whether the ENTRYPOINT
    # was in shell form (then Docker ignores CMD).
    entrypoint: Optional[list[str]] = None
    entrypoint_shell = False
    cmd: Optional[list[str]] = None
    stage_where = ""

    def finish_stage() -> None:
        """Adds what `docker run IMAGE` runs for the stage that ends here."""
        if entrypoint is None and cmd is None:
            return
        argv = entrypoint if entrypoint_shell else (entrypoint or []) + (cmd or [])
        lines.append(CommandLine(f"{stage_where} ENTRYPOINT/CMD", argv))

    for ins in instructions:
        where = f"{path}:{ins.line}"
        if ins.keyword not in DOCKERFILE_INSTRUCTIONS:
            problems.add(where, f"unknown instruction {ins.keyword}")
            continue
        if ins.keyword == "ARG" and not stages:
            name, has_default, default = ins.text.partition("=")
            if has_default:
                global_args[name.strip()] = default.strip().strip("\"'")
        elif ins.keyword == "FROM":
            if stages:
                finish_stage()
            entrypoint = cmd = None
            entrypoint_shell = False
            stage_where = where
            _flags, rest = strip_flags(ins.text)
            words = substitute(rest, global_args).split()
            if not words:
                problems.add(where, "FROM without an image")
                continue
            image = words[0]
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.append(words[2].lower())
            else:
                stages.append("")
            if image.lower() in stages[:-1]:
                continue  # built on an earlier stage
            tag = image.split("@")[0].rpartition("/")[2].partition(":")[2]
            if "bookworm" not in tag:
                problems.add(where, f"base image {image} is not Debian bookworm based "
                                    "(its tag does not say bookworm)")
        elif ins.keyword in ("COPY", "ADD"):
            _flags, rest = strip_flags(ins.text)
            words = exec_form(rest)
            if words is None:
                words = rest.split()
            if ins.heredocs or len(words) < 2:
                continue
            for source in words[:-1]:
                program = is_program(source)
                if program:
                    copied = os.path.join(bin_dir, program)
                    if not (os.path.isfile(copied) and os.access(copied, os.X_OK)):
                        problems.add(where, f"{ins.keyword} {source}: no program {copied}")
        elif ins.keyword in ("CMD", "ENTRYPOINT"):
            words = exec_form(ins.text)
            shell_form = words is None
            if shell_form:
                words = ["/bin/sh", "-c", ins.text]
            if ins.keyword == "CMD":
                cmd = words
            else:
                entrypoint, entrypoint_shell = words, shell_form
                cmd = None  # ENTRYPOINT resets an inherited CMD
        elif ins.keyword == "RUN":
            _flags, rest = strip_flags(ins.text)
            words = exec_form(rest)
            if words is not None:
                lines.append(CommandLine(f"{where} RUN", words))
            else:
                for script in [rest] + ins.heredocs:
                    split = shell_words(script, where, problems)
                    if split is not None:
                        lines.append(CommandLine(f"{where} RUN", split, shell=True))
    if not stages:
        problems.add(path, "no FROM")
    else:
        finish_stage()
    return lines


# ---------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(
        description="Checks Dockerfile, docker-compose.yml and the Kubernetes manifests "
                    "against the programs' --help.")
    parser.add_argument("--bin-dir", default=os.path.join(root, "build", "bin"),
                        help="where the four programs are (default: build/bin)")
    parser.add_argument("--dockerfile", default=os.path.join(root, "Dockerfile"))
    parser.add_argument("--compose", default=os.path.join(root, "docker-compose.yml"))
    parser.add_argument("--kubernetes-dir", default=os.path.join(root, "deploy", "kubernetes"))
    options = parser.parse_args(argv)

    problems = Problems()
    files = 0
    lines: list[CommandLine] = []
    if os.path.isfile(options.dockerfile):
        files += 1
        lines += check_dockerfile(options.dockerfile, options.bin_dir, problems)
    else:
        problems.add(options.dockerfile, "no such file")
    if os.path.isfile(options.compose):
        files += 1
        lines += check_compose(options.compose, problems)
    else:
        problems.add(options.compose, "no such file")
    kubernetes_files_checked, kubernetes_lines = check_kubernetes(options.kubernetes_dir,
                                                                  problems)
    files += kubernetes_files_checked
    lines += kubernetes_lines
    invocations = check_command_lines(lines, HelpCache(options.bin_dir, problems), problems)

    for line in problems.lines:
        print(line)
    print(f"check_deploy: {files} files, {invocations} command lines, {len(problems)} problems")
    return 1 if problems.lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
