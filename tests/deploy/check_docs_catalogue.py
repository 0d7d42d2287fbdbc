#!/usr/bin/python3
"""The reference tables of the docs match the server, both ways.

Usage: check_docs_catalogue.py PUMPTWIND METRICS_DUMP
  - every flag `PUMPTWIND --help` lists has a row in the flag table of docs/operations.md
    ("Configuration"), and every row names a flag the binary has;
  - every metric family of METRICS_DUMP (a /metrics page of a running pumptwind; the server
    creates the children of its bounded label sets at start, so every family is there) is in
    docs/metrics.md, and every metric of docs/metrics.md is in the dump.
Exit 0 and "N passed, 0 failed" when both match; 1 listing every difference otherwise.
"""
import re
import subprocess
import sys

import metric_names as mn

OPERATIONS = mn.ROOT / "docs/operations.md"
_HELP_FLAG = re.compile(r"^\s+--([a-z][a-z0-9_]*) \(", re.M)
_TABLE_FLAG = re.compile(r"^\| `--([a-z][a-z0-9_]*)`", re.M)
_TYPE_LINE = re.compile(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) ", re.M)


def binary_flags(pumptwind):
    out = subprocess.run([pumptwind, "--help"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{pumptwind} --help exited {out.returncode}")
    return set(_HELP_FLAG.findall(out.stdout))


def documented_flags():
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text.split("\n## Configuration", 1)[-1].split("\n## ", 1)[0]
    return set(_TABLE_FLAG.findall(section))


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    problems = []
    have, documented = binary_flags(sys.argv[1]), documented_flags()
    if len(have) < 10 or len(documented) < 10:
        print(f"parsed {len(have)} flags from --help and {len(documented)} from the docs: "
              "format changed?")
        return 1
    problems += [f"flag --{f} is not in the table of docs/operations.md" for f in sorted(have - documented)]
    problems += [f"docs/operations.md documents --{f}, which pumptwind does not have"
                 for f in sorted(documented - have)]

    with open(sys.argv[2], encoding="utf-8") as f:
        exported = set(_TYPE_LINE.findall(f.read()))
    catalogue = set(mn.catalogue())
    if len(exported) < 20:
        print(f"only {len(exported)} metric families in {sys.argv[2]}")
        return 1
    problems += [f"metric {m} is exported but not in docs/metrics.md" for m in sorted(exported - catalogue)]
    problems += [f"docs/metrics.md documents {m}, which the server does not export"
                 for m in sorted(catalogue - exported)]
    for p in problems:
        print("FAIL:", p)
    checked = len(have | documented) + len(exported | catalogue)
    print(f"{checked - len(problems)} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
