#!/usr/bin/env python3
"""Checks README.md's "Command reference" against the programs' --help.

Every program (and every backfillctl subcommand) must have a "### <program> [subcommand]"
heading in that section, and the flags in the first column of its table must be exactly the
flags its --help lists: nothing undocumented, nothing documented that does not exist.

Usage: check_readme_flags.py [--bin-dir build/bin] [--readme README.md]
Prints one line per problem and exits 1 if there is any.
"""
import argparse
import os
import re
import subprocess
import sys

PROGRAMS = ["backfillctl", "backfill-coordinator", "backfill-worker"]
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def help_text(bin_dir, argv):
    result = subprocess.run([os.path.join(bin_dir, argv[0])] + argv[1:] + ["--help"],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} --help exited with {result.returncode}")
    return result.stdout


def help_flags(text):
    """Flags of the "Options:" block of CLI11's help: lines like '  -p,--parallelism INT ...'."""
    flags = set()
    in_options = False
    for line in text.splitlines():
        if line.startswith("Options:"):
            in_options = True
            continue
        if in_options and line and not line.startswith(" "):
            in_options = False
        match = re.match(r"^\s{2}(-[^\s]+)", line) if in_options else None
        if match:
            flags.update(f for f in match.group(1).split(",") if f.startswith("-"))
    return flags


def subcommands(text):
    subs, inside = [], False
    for line in text.splitlines():
        if line.startswith("Subcommands:"):
            inside = True
            continue
        if inside:
            match = re.match(r"^\s{2}([a-z][\w-]*)\s", line)
            if match:
                subs.append(match.group(1))
            elif line.strip() and not line.startswith(" "):
                inside = False
    return subs


def readme_sections(readme):
    """{"backfillctl copy": {"-q", "--quiet", ...}} from the Command reference section."""
    sections, current, in_reference = {}, None, False
    for line in readme.splitlines():
        if line.startswith("## "):
            in_reference = line.strip() == "## Command reference"
            current = None
            continue
        if not in_reference:
            continue
        if line.startswith("### "):
            current = line[4:].strip().strip("`")
            sections[current] = set()
        elif current and line.startswith("|") and not line.startswith("|---"):
            first_cell = line.split("|")[1]
            if "`" in first_cell:
                sections[current].update(FLAG.findall(first_cell))
    return sections


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", default="build/bin")
    parser.add_argument("--readme", default="README.md")
    args = parser.parse_args()
    with open(args.readme, encoding="utf-8") as f:
        documented = readme_sections(f.read())
    problems = []
    commands = [[p] for p in PROGRAMS]
    top = help_text(args.bin_dir, ["backfillctl"])
    commands += [["backfillctl", sub] for sub in subcommands(top)]
    if help_text(args.bin_dir, ["timescaledb-backfill"]) != top.replace(
            os.path.join(args.bin_dir, "backfillctl"),
            os.path.join(args.bin_dir, "timescaledb-backfill")):
        problems.append("timescaledb-backfill --help differs from backfillctl --help")
    for argv in commands:
        name = " ".join(argv)
        actual = help_flags(help_text(args.bin_dir, argv))
        if name not in documented:
            problems.append(f"README: no '### {name}' in the Command reference")
            continue
        for flag in sorted(actual - documented[name]):
            problems.append(f"README: {name}: {flag} is in --help but not documented")
        for flag in sorted(documented[name] - actual):
            problems.append(f"README: {name}: {flag} is documented but not in --help")
    for name in sorted(set(documented) - {" ".join(a) for a in commands}):
        problems.append(f"README: '### {name}' documents a command that does not exist")
    for problem in problems:
        print(problem)
    print(f"check_readme_flags: {len(commands)} commands, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
