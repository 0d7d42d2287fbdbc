#!/usr/bin/env python3
"""Fails when a binary of the lower layers links gRPC, Prometheus or OpenSSL.

Usage: check_links.py <binary>...   print each forbidden shared library a binary needs
                                    (its ELF NEEDED entries), exit 1 if any

The server core and its tests hold no transport, no metrics library and no TLS
(docs/architecture.md, "Layers"); a CMake target that pulls one of them in shows here.
"""
import re
import subprocess
import sys

FORBIDDEN = re.compile(r"^lib(grpc|gpr|prometheus|ssl|crypto)[-_.+]")
NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]")


def needed(binary):
    out = subprocess.run(["readelf", "-d", binary], check=True, capture_output=True, text=True)
    return NEEDED.findall(out.stdout)


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    problems = 0
    for binary in argv[1:]:
        libs = needed(binary)
        if not libs:
            print(f"{binary}: no NEEDED entries read")
            problems += 1
        for lib in libs:
            if FORBIDDEN.match(lib):
                print(f"{binary}: links {lib}")
                problems += 1
    print(f"link check: {len(argv) - 1} binaries, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
