#!/usr/bin/env python3
"""Fails when a source file includes a layer it may not (docs/architecture.md, "Layers").

Usage: check_layers.py <source root>     check the tree, print every violation, exit 1 if any
       check_layers.py --self-test        prove each rule fires on a bad include, exit 0 if so

Every #include "..." and #include <...> of every .h/.cc/.inc file under the folders below is
checked against the rules of the first folder (longest prefix) that contains it.
"""
import os
import re
import sys
import tempfile

# folder -> (allowed include prefixes or None for "anything not forbidden", forbidden prefixes)
STD_OR_ABSL = ("absl/",)
RULES = {
    # The pure model: nothing of the project but itself, absl and the standard library.
    "twin/": {"only": ("twin/",) + STD_OR_ABSL},
    # Shared by every layer: depends on none of them.
    "common/": {"forbid": ("server/", "tools/", "device_link/", "twin/", "tests/")},
    # The gateway protocol: never the server.
    "device_link/": {"forbid": ("server/", "tools/")},
    "server/store/": {"forbid": ("server/core/", "server/metrics/", "server/api/",
                                 "server/process/", "grpcpp/", "grpc/", "prometheus/",
                                 "common/grpc_status.h", "tools/")},
    # The core: no transport, no metrics library, no upper layer.
    "server/core/": {"forbid": ("server/metrics/", "server/api/", "server/process/",
                                "grpcpp/", "grpc/", "prometheus/", "openssl/",
                                "common/grpc_status.h", "tools/"),
                     "forbid_suffix": (".grpc.pb.h",)},
    # Cluster mode's replica side: on the store, below everything that serves.
    "server/cluster/": {"forbid": ("server/core/", "server/metrics/", "server/api/",
                                   "server/http/", "server/process/", "grpcpp/", "grpc/",
                                   "prometheus/", "tools/")},
    "server/metrics/": {"forbid": ("server/api/", "server/http/", "server/process/", "tools/")},
    "server/api/": {"forbid": ("server/http/", "server/process/", "tools/")},
    # The HTTP listener sits on the API (calls it over gRPC in-process), below the process.
    "server/http/": {"forbid": ("server/process/", "tools/")},
    "server/process/": {"forbid": ("tools/",)},
    # The CLI talks gRPC to the server: it links no server library.
    "tools/ctl/": {"forbid": ("server/", "twin/")},
    # The simulator shares no header with the model it is judged against.
    "tools/sim/": {"forbid": ("server/", "twin/")},
    # Tests of a lower layer use no tool code.
    "tests/twin/": {"forbid": ("tools/", "server/", "device_link/")},
    "tests/store/": {"forbid": ("tools/",)},
    "tests/cluster/": {"forbid": ("tools/",)},
    "tests/registry/": {"forbid": ("tools/",)},
    "tests/device_link/": {"forbid": ("tools/", "server/")},
}

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')
SOURCE_EXT = (".h", ".cc", ".inc", ".cpp")


def rule_for(rel_path):
    best = None
    for folder in RULES:
        if rel_path.startswith(folder) and (best is None or len(folder) > len(best)):
            best = folder
    return best


def violation(folder, header):
    rule = RULES[folder]
    if "only" in rule:
        # Standard headers: no slash and no extension, or <sys/...>-style system headers.
        if "/" not in header or header.startswith(("sys/", "bits/")):
            return None
        if not header.startswith(rule["only"]):
            return f"{folder} may include only {', '.join(rule['only'])} and the standard library"
        return None
    for bad in rule.get("forbid", ()):
        if header.startswith(bad):
            return f"{folder} may not include {bad}"
    for bad in rule.get("forbid_suffix", ()):
        if header.endswith(bad):
            return f"{folder} may not include *{bad}"
    return None


def check(root):
    problems = []
    for folder in RULES:
        base = os.path.join(root, folder)
        if not os.path.isdir(base):
            continue
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if not name.endswith(SOURCE_EXT):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                if rule_for(rel) != folder:
                    continue  # a deeper folder has its own rule
                with open(path, encoding="utf-8", errors="replace") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        why = violation(folder, m.group(1))
                        if why:
                            problems.append(f"{rel}:{number}: includes {m.group(1)}: {why}")
    return problems


def self_test():
    bad = {
        "twin/x.h": '#include "server/core/shard.h"',
        "twin/y.h": '#include "google/protobuf/message.h"',
        "common/x.h": '#include "server/api/auth.h"',
        "device_link/x.cc": '#include "server/core/convert.h"',
        "server/store/x.cc": '#include "server/core/shard.h"',
        "server/core/x.cc": '#include "grpcpp/server.h"',
        "server/core/y.cc": "#include <prometheus/counter.h>",
        "server/core/z.cc": '#include "pumptwin/v1/twin_service.grpc.pb.h"',
        "server/core/w.cc": '#include "server/api/twin_service.h"',
        "server/core/v.cc": '#include "common/grpc_status.h"',
        "server/core/u.cc": "#include <openssl/sha.h>",
        "server/cluster/x.cc": '#include "server/core/shard.h"',
        "server/metrics/x.cc": '#include "server/api/alert_hub.h"',
        "server/api/x.cc": '#include "server/process/server_app.h"',
        "tools/ctl/x.cc": '#include "server/core/convert.h"',
        "tools/sim/x.cc": '#include "twin/twin.h"',
        "tests/twin/x.cc": '#include "tools/sim/fleet.h"',
        "tests/registry/x.cc": '#include "tools/loadgen/loadgen_common.h"',
        "tests/device_link/x.cc": '#include "tools/loadgen/loadgen_common.h"',
    }
    good = {
        "twin/ok.h": '#include <vector>\n#include "absl/time/time.h"\n#include "twin/sample.h"',
        "server/core/ok.cc": '#include "server/store/store.h"\n#include "common/logging.h"',
        "server/api/ok.cc": '#include "server/core/shard.h"\n#include "grpcpp/server.h"',
        "server/cluster/ok.cc": '#include "server/store/postgres_store.h"',
    }
    failures = []
    for path, text in bad.items():
        with tempfile.TemporaryDirectory() as root:
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as f:
                f.write(text + "\n")
            if not check(root):
                failures.append(f"not caught: {path}: {text}")
    with tempfile.TemporaryDirectory() as root:
        for path, text in good.items():
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as f:
                f.write(text + "\n")
        failures += [f"false alarm: {p}" for p in check(root)]
    for f in failures:
        print(f)
    print(f"self-test: {len(bad)} bad includes, {len(good)} good files, {len(failures)} failures")
    return 1 if failures else 0


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        return self_test()
    if len(argv) != 2:
        print(__doc__)
        return 2
    problems = check(argv[1])
    for p in problems:
        print(p)
    print(f"layer check: {len(problems)} forbidden includes")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
