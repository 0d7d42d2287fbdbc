#!/usr/bin/env python3
"""Fails when a C++ source of the tree is not formatted as the repository's .clang-format says.

Usage: check_format.py <clang-format> <source root>
  runs `clang-format --dry-run -Werror` over every .h/.cc/.cpp/.inc file under the root
  (build trees, data directories, hidden folders and generated *.pb.* files excepted), prints
  each file that differs with clang-format's first complaint, exits 1 if any does.
  Fix with `clang-format -i <file>` (the same clang-format: Debian 12's is 14).
"""
import os
import subprocess
import sys

SOURCE_EXT = (".h", ".cc", ".cpp", ".inc")
SKIP_TOP = (".", "build", "data")
BATCH = 64


def sources(root):
    out = []
    for top in sorted(os.listdir(root)):
        path = os.path.join(root, top)
        if top.startswith(SKIP_TOP) or not os.path.isdir(path):
            continue
        for dirpath, dirnames, files in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(files):
                if name.endswith(SOURCE_EXT) and ".pb." not in name:
                    out.append(os.path.join(dirpath, name))
    return out


def main(argv):
    if len(argv) != 3:
        print(__doc__)
        return 2
    clang_format, root = argv[1], os.path.abspath(argv[2])
    files = sources(root)
    if not files:
        print(f"no C++ sources under {root}")
        return 1
    # One clang-format per batch of files; it names each file it complains about.
    first_complaint = {}
    failed_runs = 0
    for start in range(0, len(files), BATCH):
        batch = files[start:start + BATCH]
        run = subprocess.run([clang_format, "--dry-run", "-Werror"] + batch,
                             capture_output=True, text=True)
        if run.returncode != 0:
            failed_runs += 1
        for line in run.stderr.splitlines():
            for path in batch:
                if line.startswith(path + ":") and "error:" in line:
                    first_complaint.setdefault(path, line[len(path) + 1:])
    for path in files:
        if path in first_complaint:
            print(f"{os.path.relpath(path, root)}:{first_complaint[path]}")
    if failed_runs and not first_complaint:
        print("clang-format failed without naming a file")
        return 1
    print(f"format check: {len(files)} files, {len(first_complaint)} not formatted")
    return 1 if first_complaint else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
