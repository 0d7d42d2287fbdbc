#!/usr/bin/python3
"""Schema-free structural check of deploy/: Kubernetes manifests, Grafana dashboard, flag
files, systemd unit, Containerfile.

No schema download: it checks that files parse and that the fields pumptwin depends on are
present and refer to each other consistently (selectors match pod labels, probes and mounts
name real ports and volumes, every flag exists in server/*.cc...). Needs python3-yaml.
Prints "N passed, M failed"; exit 1 on any failure.
"""
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"

results = []  # (ok, message)


def check(ok, message):
    results.append((bool(ok), message))
    return bool(ok)


def server_flags():
    names = set()
    for path in (ROOT / "server").rglob("*.cc"):
        names.update(re.findall(r"ABSL_FLAG\(\s*[^,]+,\s*([a-z0-9_]+)\s*,", path.read_text(encoding="utf-8")))
    return names


# Flags whose value is a file or directory the server reads (or creates) at start.
PATH_FLAGS = ("data_dir", "tls_cert_file", "tls_key_file", "tls_client_ca_file", "auth_tokens_file",
              "drug_library", "backup_dir")


def flag_values(text):
    return dict(re.findall(r"^\s*--([a-z0-9_]+)=(.*)$", text, re.M))


def install_targets(text):
    """Paths created by the `install` commands of a shell block: {path} (directories end in /)."""
    out = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        words = line.split()
        if not words or words[0] != "install":
            continue
        operands = [w for i, w in enumerate(words[1:], 1)
                    if not w.startswith("-") and words[i - 1] not in ("-m", "-g", "-o")]
        if "-d" in words:
            out.update(o.rstrip("/") + "/" for o in operands)
        elif operands:
            dest = operands[-1]
            if dest.endswith("/") and len(operands) > 1:
                out.update(dest + pathlib.Path(o).name for o in operands[:-1])
            else:
                out.add(dest)
    return out


def documented_block(doc, heading):
    """The first ```sh block of section `heading` of a markdown document."""
    section = re.split(r"\n##+ ", doc.split(heading, 1)[1], maxsplit=1)[0]
    return section.split("```sh", 1)[1].split("```", 1)[0]


def check_flag_text(where, text, known):
    flags = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"--([a-z0-9_]+)=(.*)", line)
        if not check(m, f"{where}:{n}: '--flag=value' line: {line!r}"):
            continue
        flags.append(m.group(1))
        check(m.group(1) in known, f"{where}:{n}: --{m.group(1)} is a pumptwind flag")
    check(len(flags) == len(set(flags)), f"{where}: no flag given twice")
    return flags


# ------------------------------------------------------------------------------ Kubernetes
def load_k8s():
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        try:
            loaded = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        except yaml.YAMLError as e:
            check(False, f"{path.name}: YAML parses ({e})")
            continue
        check(True, f"{path.name}: YAML parses")
        for d in loaded:
            docs.append((path.name, d))
    return docs


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_k8s(known_flags):
    kubectl = shutil.which("kubectl")
    if kubectl:  # renders offline: the kustomization and every resource it lists load
        r = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True)
        check(r.returncode == 0, f"kubectl kustomize deploy/kubernetes renders {r.stderr.strip()[:200]}")
    else:
        print("note: kubectl not installed; kustomization not rendered")
    docs = load_k8s()
    objs = {}
    for name, d in docs:
        if d.get("kind") == "Kustomization":
            for res in d.get("resources", []):
                check((K8S / res).is_file(), f"kustomization: resource {res} exists")
            listed = set(d.get("resources", []))
            for path in K8S.glob("*.yaml"):
                if path.name != "kustomization.yaml":
                    check(path.name in listed, f"kustomization lists {path.name}")
            continue
        ok = check(isinstance(d.get("apiVersion"), str) and isinstance(d.get("kind"), str)
                   and isinstance(d.get("metadata", {}).get("name"), str),
                   f"{name}: apiVersion, kind, metadata.name present")
        if ok:
            objs.setdefault(d["kind"], []).append(d)

    for kind in ("StatefulSet", "Service", "PodDisruptionBudget", "ServiceMonitor", "ConfigMap"):
        check(objs.get(kind), f"kubernetes: a {kind} exists")
    if not objs.get("StatefulSet"):
        return
    sts = objs["StatefulSet"][0]
    spec = sts["spec"]
    tmpl = spec["template"]
    pod_labels = tmpl["metadata"]["labels"]
    pod = tmpl["spec"]
    check(sts["apiVersion"] == "apps/v1", "StatefulSet apiVersion apps/v1")
    check(spec.get("replicas") == 1, "StatefulSet replicas 1 (single-node mode)")
    check(matches(spec["selector"]["matchLabels"], pod_labels), "StatefulSet selector matches its pod labels")
    services = {s["metadata"]["name"]: s for s in objs.get("Service", [])}
    gov = services.get(spec.get("serviceName"))
    check(gov is not None and gov["spec"].get("clusterIP") == "None",
          "StatefulSet serviceName is a headless Service of the set")
    vct = {v["metadata"]["name"]: v for v in spec.get("volumeClaimTemplates", [])}
    check("data" in vct and vct["data"]["spec"]["resources"]["requests"].get("storage"),
          "StatefulSet has a 'data' volumeClaimTemplate with a storage request")
    sc = pod.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True and sc.get("runAsUser", 0) != 0, "pod runs as non-root")
    check(pod.get("terminationGracePeriodSeconds", 30) >= 30, "terminationGracePeriodSeconds >= 30")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    configmaps = {c["metadata"]["name"]: c for c in objs.get("ConfigMap", [])}
    containers = pod.get("containers", [])
    check(len(containers) == 1, "one container")
    c = containers[0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check({"grpc", "metrics"} <= set(ports), "container ports 'grpc' and 'metrics'")
    rp = c.get("readinessProbe", {})
    if "grpc" in rp:
        check(rp["grpc"].get("port") in (ports.get("grpc"),), "readiness grpc probe on the gRPC port")
    else:
        cmd = " ".join(rp.get("exec", {}).get("command", []))
        check("pumptwinctl" in cmd and " health" in cmd and str(ports.get("grpc")) in cmd,
              "readiness probe checks grpc.health.v1 on the gRPC port (pumptwinctl health)")
    lp = c.get("livenessProbe", {})
    check(lp.get("httpGet", {}).get("port") in ("metrics", ports.get("metrics")) or "grpc" in lp,
          "liveness probe present (HTTP on the metrics port)")
    res = c.get("resources", {})
    check(res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory"),
          "resources.requests cpu and memory")
    check(res.get("limits", {}).get("memory"), "resources.limits.memory (what PumptwinMemoryNearLimit measures)")
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    for m in c.get("volumeMounts", []):
        check(m["name"] in volumes or m["name"] in vct, f"volumeMount {m['name']} has a volume")
    check(c.get("securityContext", {}).get("allowPrivilegeEscalation") is False,
          "container allowPrivilegeEscalation false")
    # The flag file: mounted from the ConfigMap, and its paths point at mounts.
    args = c.get("args", [])
    cfg = [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    check(cfg, "container args give --config=")
    for vname, v in volumes.items():
        if "configMap" in v:
            cm = v["configMap"]["name"]
            created = f"create configmap {cm} " in (ROOT / "docs/operations.md").read_text(encoding="utf-8")
            check(cm in configmaps or v["configMap"].get("optional") or created,
                  f"volume {vname}: ConfigMap {cm} exists, is optional or is created in docs/operations.md")
        for src in v.get("projected", {}).get("sources", []):
            if "secret" in src:
                check(src["secret"].get("name"), f"volume {vname}: secret reference named")
    cm = configmaps.get("pumptwin-config", {}).get("data", {})
    flags_text = cm.get("pumptwind.flags", "")
    check(flags_text, "ConfigMap pumptwin-config has pumptwind.flags")
    flags = check_flag_text("configmap pumptwind.flags", flags_text, known_flags)
    values = dict(re.findall(r"^--([a-z0-9_]+)=(.*)$", flags_text, re.M))
    for f in ("listen", "metrics_listen", "data_dir"):
        check(f in flags, f"configmap pumptwind.flags sets --{f}")
    for f in PATH_FLAGS:
        if f not in values:
            continue
        under = [n for n, p in mounts.items() if values[f].startswith(p.rstrip("/") + "/")]
        check(under, f"--{f}={values[f]} lies under a volume mount")
        for n in under:  # a file the server needs at start cannot come from an optional volume
            v = volumes.get(n, {})
            check(not v.get("configMap", {}).get("optional") and not v.get("secret", {}).get("optional"),
                  f"--{f}: volume {n} is not optional")
    check("drug_library" in values, "configmap pumptwind.flags passes --drug_library")
    if "listen" in values:
        check(values["listen"].rsplit(":", 1)[1] == str(ports.get("grpc")), "--listen port == container port grpc")
    if "metrics_listen" in values:
        check(values["metrics_listen"].rsplit(":", 1)[1] == str(ports.get("metrics")),
              "--metrics_listen port == container port metrics")
    # Services select the pods and name real ports.
    for sname, s in services.items():
        check(matches(s["spec"].get("selector"), pod_labels), f"Service {sname} selects the StatefulSet pods")
        for p in s["spec"].get("ports", []):
            check(p.get("targetPort") in ports or p.get("targetPort") in ports.values(),
                  f"Service {sname} port {p.get('name')} targets a container port")
    for pdb in objs.get("PodDisruptionBudget", []):
        check(pdb["apiVersion"] == "policy/v1", "PodDisruptionBudget policy/v1")
        check(matches(pdb["spec"]["selector"]["matchLabels"], pod_labels), "PDB selects the StatefulSet pods")
        check(("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"]),
              "PDB sets exactly one of minAvailable / maxUnavailable")
    for sm in objs.get("ServiceMonitor", []):
        check(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor monitoring.coreos.com/v1")
        sel = sm["spec"]["selector"]["matchLabels"]
        chosen = [s for s in services.values() if matches(sel, s["metadata"].get("labels", {}))]
        check(len(chosen) == 1, "ServiceMonitor selects exactly one Service (no double scrape)")
        if chosen:
            check(chosen[0]["metadata"]["name"] == "pumptwin",
                  "ServiceMonitor's Service is named 'pumptwin' (job label the rules expect)")
            sports = {p["name"] for p in chosen[0]["spec"]["ports"]}
            for ep in sm["spec"].get("endpoints", []):
                check(ep.get("port") in sports, f"ServiceMonitor endpoint port {ep.get('port')} exists on the Service")
                check(ep.get("path", "/metrics") == "/metrics", "ServiceMonitor path /metrics")


# ------------------------------------------------------------------------------ Grafana
def check_grafana():
    path = DEPLOY / "grafana/pumptwin-dashboard.json"
    try:
        dash = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        check(False, f"dashboard JSON parses ({e})")
        return
    check(True, "dashboard JSON parses")
    for key in ("title", "uid", "schemaVersion", "panels", "templating"):
        check(key in dash, f"dashboard has '{key}'")
    variables = {v["name"] for v in dash.get("templating", {}).get("list", [])}
    check({"datasource", "job", "instance"} <= variables, "dashboard variables datasource, job, instance")
    ids, rows = [], []
    builtin = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}
    for p in dash.get("panels", []):
        ids.append(p.get("id"))
        g = p.get("gridPos", {})
        check(all(k in g for k in "hwxy") and g["x"] + g["w"] <= 24, f"panel '{p.get('title')}' gridPos within 24 columns")
        if p.get("type") == "row":
            rows.append(p.get("title"))
            continue
        check(p.get("type") in ("timeseries", "stat", "table", "gauge", "bargauge", "text"),
              f"panel '{p.get('title')}' has a known type")
        targets = p.get("targets", [])
        check(targets, f"panel '{p.get('title')}' has targets")
        refs = [t.get("refId") for t in targets]
        check(len(refs) == len(set(refs)) and all(refs), f"panel '{p.get('title')}' refIds unique")
        for t in targets:
            expr = t.get("expr", "")
            check(expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"),
                  f"panel '{p.get('title')}' expr brackets balance")
            for var in re.findall(r"\$\{?([A-Za-z_]+)", expr + json.dumps(t.get("datasource", {}))):
                check(var in variables or var in builtin, f"panel '{p.get('title')}': ${var} is defined")
    check(len(ids) == len(set(ids)) and None not in ids, "panel ids unique")
    for needed in ("Fleet overview", "Ingest", "Latency", "Store", "Alerts", "Streams"):
        check(any(needed.lower() in (r or "").lower() for r in rows), f"dashboard row '{needed}'")


# ------------------------------------------------------------------------------ host files
def check_host_files(known_flags):
    check_flag_text("deploy/pumptwind.flags", (DEPLOY / "pumptwind.flags").read_text(encoding="utf-8"), known_flags)
    unit = (DEPLOY / "systemd/pumptwind.service").read_text(encoding="utf-8")
    keys = {}
    for line in unit.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            keys.setdefault(m.group(1), []).append(m.group(2))
    for k, v in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                 "PrivateTmp": "yes", "MemoryDenyWriteExecute": "yes", "StateDirectory": "pumptwin"}.items():
        check(v in keys.get(k, []), f"systemd unit: {k}={v}")
    check("yes" in keys.get("DynamicUser", []) or keys.get("User"), "systemd unit: DynamicUser or User")
    check(keys.get("RestrictAddressFamilies"), "systemd unit: RestrictAddressFamilies")
    check("@system-service" in keys.get("SystemCallFilter", []), "systemd unit: SystemCallFilter=@system-service")
    check(int(keys.get("LimitNOFILE", ["0"])[0]) >= 65536, "systemd unit: LimitNOFILE >= 65536")
    exec_start = " ".join(keys.get("ExecStart", []))
    check("--config=/etc/pumptwin/pumptwind.flags" in unit, "systemd unit: ExecStart uses the flag file")
    for flag in re.findall(r"--([a-z0-9_]+)=", unit):
        check(flag in known_flags, f"systemd unit: --{flag} is a pumptwind flag")
    analyze = shutil.which("systemd-analyze")
    if analyze:
        with tempfile.TemporaryDirectory() as d:
            copy = pathlib.Path(d) / "pumptwind.service"
            copy.write_text(unit.replace("/usr/bin/pumptwind", "/bin/true"), encoding="utf-8")
            r = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
            check(r.returncode == 0, f"systemd-analyze verify accepts the unit {r.stderr.strip()}")
            if r.stderr.strip():
                print("note: systemd-analyze verify:", r.stderr.strip())
    else:
        print("note: systemd-analyze not installed; unit syntax not verified by systemd")
    check_install_paths(unit)
    cf = (DEPLOY / "container/Containerfile").read_text(encoding="utf-8")
    froms = re.findall(r"^FROM\s+(\S+)", cf, re.M)
    check(len(froms) >= 2 and all("debian:12" in f for f in froms), "Containerfile: multi-stage, Debian 12 bases")
    user = re.findall(r"^USER\s+(\S+)", cf, re.M)
    check(user and not user[-1].startswith(("root", "0")), "Containerfile: runs as non-root")
    check(re.search(r"^HEALTHCHECK", cf, re.M), "Containerfile: HEALTHCHECK")
    for src in re.findall(r"^COPY\s+(?!--from)(\S+)", cf, re.M):
        check((ROOT / src).exists(), f"Containerfile: COPY source {src} exists")


def check_install_paths(unit):
    """Every file the documented systemd and container paths need is created by their steps."""
    ops = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    host_flags = flag_values((DEPLOY / "pumptwind.flags").read_text(encoding="utf-8"))
    # systemd: the install steps (docs and the unit's own comment) create every
    # LoadCredential source and every file of the flag file the unit does not override;
    # the TLS files come from the "TLS and mTLS" steps.
    steps = documented_block(ops, "### systemd") + documented_block(ops, "## TLS and mTLS")
    comment = "\n".join(l.lstrip("# ") for l in unit.splitlines() if l.startswith("#"))
    for where, text in (("docs/operations.md systemd", steps), ("unit comment", comment)):
        created = install_targets(text)
        for cred in re.findall(r"^LoadCredential=[^:]+:(\S+)$", unit, re.M):
            tls = cred.startswith("/etc/pumptwin/tls/")
            check(cred in created or (tls and where == "unit comment"),
                  f"{where}: the install steps create the credential source {cred}")
        overridden = set(re.findall(r"--([a-z0-9_]+)=%d/", unit))
        for f in PATH_FLAGS:
            path = host_flags.get(f, "")
            if f in overridden or not path.startswith("/etc/"):
                continue
            check(path in created, f"{where}: the install steps create --{f}={path}")
    # Container: every /etc file of the flag file is in the image (COPY) or under a mount of
    # the documented `podman run` (docs and the Containerfile's comment).
    cf = (DEPLOY / "container/Containerfile").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY\s+(?!--from)\S+\s+(\S+)$", cf, re.M))
    runs = {"docs/operations.md container": documented_block(ops, "### Container"),
            "Containerfile comment": "\n".join(l.lstrip("# ") for l in cf.splitlines() if l.startswith("#"))}
    for where, text in runs.items():
        mounts = [m.split(":")[1] for m in re.findall(r"-v\s+(\S+)", text)]
        check(mounts, f"{where}: podman run mounts volumes")
        for f in PATH_FLAGS:
            path = host_flags.get(f, "")
            if not path.startswith("/"):
                continue
            ok = path in copied or any(path.startswith(m.rstrip("/") + "/") for m in mounts)
            check(ok, f"{where}: --{f}={path} is in the image or under a mounted volume")


def main():
    known = server_flags()
    check(len(known) >= 8, f"found the pumptwind flags in server/*.cc ({len(known)})")
    check_k8s(known)
    check_grafana()
    check_host_files(known)
    failed = [m for ok, m in results if not ok]
    for m in failed:
        print("FAIL:", m)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
