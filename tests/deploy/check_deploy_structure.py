#!/usr/bin/python3
"""Schema-free structural check of deploy/: Kubernetes manifests (single node and the cluster
overlay with its CloudNativePG database), Grafana dashboard, flag files, systemd unit,
Containerfile, the Patroni example.

No schema download: it checks that files parse and that the fields pumptwin depends on are
present and refer to each other consistently (selectors match pod labels, probes and mounts
name real ports and volumes, every flag exists in server/*.cc...). Needs python3-yaml.
Prints "N passed, M failed"; exit 1 on any failure.
"""
import copy
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
K8S_CLUSTER = DEPLOY / "kubernetes-cluster"
PATRONI = DEPLOY / "patroni"

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


# ------------------------------------------------------------------------------ cluster mode
CLUSTER_FLAGS = {"cluster_replica", "cluster_advertise", "cluster_shards", "cluster_lease_ttl"}
# Flags that do not apply to --store=postgres (refused, exit 2, or ignored there).
NOT_WITH_POSTGRES = {"data_dir", "backup_dir", "backup_interval", "backup_keep", "store_memtable_mb",
                     "store_block_cache_mb", "store_idle_flush"}


def cluster_known_flags(known):
    """The flags the cluster examples may use. A server without cluster mode (none of the four
    --cluster_* flags) accepts them as pending; once any exists, each must exist."""
    if CLUSTER_FLAGS & known:
        return known
    print("note: this server has no --cluster_* flags yet; the cluster examples' "
          + ", ".join("--" + f for f in sorted(CLUSTER_FLAGS)) + " are not checked against it")
    return known | CLUSTER_FLAGS


def load_yaml_docs(path, where):
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (yaml.YAMLError, OSError) as e:
        check(False, f"{where}: YAML parses ({e})")
        return []
    check(True, f"{where}: YAML parses")
    return docs


def strategic_merge(base, patch):
    """The strategic merge patch subset the overlay uses: maps merge, lists of maps merge by
    `name` (containers, env, volumes) or `mountPath` (volumeMounts), other lists replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = strategic_merge(base[k], v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(patch, list) and patch and all(isinstance(x, dict) for x in base + patch):
        key = next((k for k in ("name", "mountPath") if all(k in x for x in base + patch)), None)
        if key:
            out = list(patch)  # patch items first, as kustomize orders them
            seen = {x[key] for x in patch}
            merged = {x[key]: x for x in base}
            out = [strategic_merge(merged[x[key]], x) if x[key] in merged else x for x in patch]
            out += [x for x in base if x[key] not in seen]
            return out
    return patch


def json_patch(obj, ops, where):
    """RFC 6902 add/remove/replace on a copy of obj; each path must resolve."""
    obj = copy.deepcopy(obj)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = obj
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.get(p)
            if parent is None:
                break
        last = parts[-1]
        exists = parent is not None and (last in parent if isinstance(parent, dict) else int(last) < len(parent))
        if op["op"] in ("remove", "replace"):
            if not check(exists, f"{where}: {op['op']} {op['path']}: the path exists in the base"):
                continue
        elif not check(parent is not None, f"{where}: add {op['path']}: the parent exists in the base"):
            continue
        if op["op"] == "remove":
            del parent[last if isinstance(parent, dict) else int(last)]
        else:
            parent[last if isinstance(parent, dict) else int(last)] = op["value"]
    return obj


def render_cluster_overlay():
    """The overlay's objects {(kind, name): obj}: kubectl kustomize when installed, else the
    base with the overlay's patches applied here."""
    kust_path = K8S_CLUSTER / "kustomization.yaml"
    kust = (load_yaml_docs(kust_path, "kubernetes-cluster/kustomization.yaml") or [{}])[0]
    check(kust.get("kind") == "Kustomization", "kubernetes-cluster: a Kustomization")
    resources = kust.get("resources", [])
    for res in resources:
        target = (K8S_CLUSTER / res).resolve()
        check(target.is_file() or (target / "kustomization.yaml").is_file(),
              f"kubernetes-cluster: resource {res} exists")
    check(resources == ["../kubernetes"], "kubernetes-cluster: an overlay of deploy/kubernetes")
    listed = {p.get("path") for p in kust.get("patches", []) if p.get("path")} | set(resources)
    for path in K8S_CLUSTER.glob("*.yaml"):
        if path.name != "kustomization.yaml":
            check(path.name in listed, f"kubernetes-cluster: kustomization uses {path.name}")
    base = {}
    for path in sorted(K8S.glob("*.yaml")):
        for d in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if d and d.get("kind") != "Kustomization":
                base[(d["kind"], d["metadata"]["name"])] = d
    objs = copy.deepcopy(base)
    for i, p in enumerate(kust.get("patches", [])):
        if p.get("path"):
            ppath = K8S_CLUSTER / p["path"]
            if not check(ppath.is_file(), f"kubernetes-cluster: patch {p['path']} exists"):
                continue
            for d in load_yaml_docs(ppath, f"kubernetes-cluster/{p['path']}"):
                key = (d.get("kind"), d.get("metadata", {}).get("name"))
                if check(key in objs, f"kubernetes-cluster/{p['path']}: patches {key[0]} {key[1]} of the base"):
                    objs[key] = strategic_merge(objs[key], d)
        else:
            t = p.get("target", {})
            key = (t.get("kind"), t.get("name"))
            if check(key in objs, f"kubernetes-cluster: patch {i} targets {key[0]} {key[1]} of the base"):
                objs[key] = json_patch(objs[key], yaml.safe_load(p["patch"]), f"kubernetes-cluster patch {i}")
    kubectl = shutil.which("kubectl")
    if kubectl:
        r = subprocess.run([kubectl, "kustomize", str(K8S_CLUSTER)], capture_output=True, text=True)
        if check(r.returncode == 0, f"kubectl kustomize deploy/kubernetes-cluster renders {r.stderr.strip()[:300]}"):
            rendered = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(r.stdout) if d}
            check(set(rendered) == set(objs), "kubectl renders the same objects as the patches applied here")
            return rendered
    else:
        print("note: kubectl not installed; the cluster overlay is checked with its patches applied here")
    return objs


def dsn_fields(dsn):
    return dict(re.findall(r"([a-z_]+)=(\S+)", dsn))


def check_k8s_cluster(known):
    objs = render_cluster_overlay()
    sts = objs.get(("StatefulSet", "pumptwin"))
    if not check(sts, "kubernetes-cluster: the StatefulSet pumptwin"):
        return
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    check(spec.get("replicas", 1) >= 3, "kubernetes-cluster: at least 3 replicas")
    check(spec.get("podManagementPolicy") == "Parallel", "kubernetes-cluster: replicas start in parallel")
    check("volumeClaimTemplates" not in spec, "kubernetes-cluster: no persistent volume per pod")
    headless = objs.get(("Service", spec.get("serviceName")), {})
    check(headless.get("spec", {}).get("clusterIP") == "None", "kubernetes-cluster: serviceName is a headless Service")
    c = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    env = {e["name"]: e for e in c.get("env", [])}
    args = c.get("args", [])
    arg_flags = {}
    for a in args:
        m = re.fullmatch(r"--([a-z0-9_]+)=(.*)", a)
        if check(m, f"kubernetes-cluster: arg {a!r} is --flag=value"):
            arg_flags[m.group(1)] = m.group(2)
    for var in re.findall(r"\$\(([A-Z_]+)\)", " ".join(args)):
        check(var in env, f"kubernetes-cluster: $({var}) in the args is an env variable of the container")

    def field_ref(name):
        return env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")

    def secret_ref(name):
        return env.get(name, {}).get("valueFrom", {}).get("secretKeyRef", {})

    replica = re.fullmatch(r"\$\(([A-Z_]+)\)", arg_flags.get("cluster_replica", ""))
    check(replica and field_ref(replica.group(1)) == "metadata.name",
          "kubernetes-cluster: --cluster_replica is the pod name (downward API)")
    adv = re.fullmatch(r"\$\(([A-Z_]+)\)\.([a-z0-9-]+)\.\$\(([A-Z_]+)\)\.svc\.[a-z0-9.-]+:(\d+)",
                       arg_flags.get("cluster_advertise", ""))
    check(adv and field_ref(adv.group(1)) == "metadata.name" and adv.group(2) == spec.get("serviceName")
          and field_ref(adv.group(3)) == "metadata.namespace" and int(adv.group(4)) == ports.get("grpc"),
          "kubernetes-cluster: --cluster_advertise is <pod>.<headless service>.<namespace>.svc...:<grpc port>")
    dsn = re.fullmatch(r"\$\(([A-Z_]+)\)", arg_flags.get("postgres_dsn", ""))
    check(dsn and secret_ref(dsn.group(1)).get("name") and secret_ref(dsn.group(1)).get("key"),
          "kubernetes-cluster: --postgres_dsn comes from a Secret")
    check(secret_ref("PGPASSWORD").get("name") and secret_ref("PGPASSWORD").get("key"),
          "kubernetes-cluster: PGPASSWORD comes from a Secret")
    cm = objs.get(("ConfigMap", "pumptwin-config"), {}).get("data", {}).get("pumptwind.flags", "")
    cluster_known = cluster_known_flags(known)
    file_flags = check_flag_text("kubernetes-cluster pumptwind.flags", cm, cluster_known)
    for f in arg_flags:
        check(f in cluster_known, f"kubernetes-cluster args: --{f} is a pumptwind flag")
    values = {**flag_values(cm), **arg_flags}
    check(not set(file_flags) & set(arg_flags), "kubernetes-cluster: no flag both in the file and the args")
    check(values.get("store") == "postgres", "kubernetes-cluster: --store=postgres")
    for f in ("postgres_schema", "cluster_shards", "cluster_lease_ttl", "listen", "metrics_listen"):
        check(f in values, f"kubernetes-cluster: --{f} is set")
    for f in sorted(NOT_WITH_POSTGRES & set(values)):
        check(False, f"kubernetes-cluster: --{f} does not apply to --store=postgres")
    if "listen" in values:
        check(values["listen"].rsplit(":", 1)[1] == str(ports.get("grpc")), "kubernetes-cluster: --listen port == grpc")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    for path, name in mounts.items():
        check(name in volumes, f"kubernetes-cluster: volumeMount {path} has a volume {name}")
    for f in PATH_FLAGS:
        if f in values:
            check(any(values[f].startswith(p.rstrip("/") + "/") for p in mounts),
                  f"kubernetes-cluster: --{f}={values[f]} lies under a volume mount")
    pdb = objs.get(("PodDisruptionBudget", "pumptwin"), {}).get("spec", {})
    check(pdb.get("maxUnavailable") == 1 and "minAvailable" not in pdb,
          "kubernetes-cluster: the PodDisruptionBudget lets one replica go at a time")
    # The Secrets the pods use are the ones the CloudNativePG example creates or documents.
    cnpg_dir = K8S_CLUSTER / "cloudnativepg"
    ck = (load_yaml_docs(cnpg_dir / "kustomization.yaml", "cloudnativepg/kustomization.yaml") or [{}])[0]
    for res in ck.get("resources", []):
        check((cnpg_dir / res).is_file(), f"cloudnativepg: resource {res} exists")
    for path in cnpg_dir.glob("*.yaml"):
        if path.name != "kustomization.yaml":
            check(path.name in ck.get("resources", []), f"cloudnativepg: kustomization lists {path.name}")
    clusters = [d for d in load_yaml_docs(cnpg_dir / "cluster.yaml", "cloudnativepg/cluster.yaml")
                if d.get("kind") == "Cluster"]
    if not check(len(clusters) == 1, "cloudnativepg: one Cluster"):
        return
    cl = clusters[0]
    name = cl["metadata"]["name"]
    cspec = cl["spec"]
    check(cl.get("apiVersion") == "postgresql.cnpg.io/v1", "cloudnativepg: apiVersion postgresql.cnpg.io/v1")
    check(cspec.get("instances") == 3, "cloudnativepg: 3 instances")
    sync = cspec.get("postgresql", {}).get("synchronous", {})
    check(sync.get("method") == "any" and sync.get("number") == 1,
          "cloudnativepg: quorum commit, ANY 1 (synchronous method any, number 1)")
    check(sync.get("dataDurability", "required") == "required",
          "cloudnativepg: dataDurability required (no fallback to the primary alone)")
    params = cspec.get("postgresql", {}).get("parameters", {})
    check(params.get("synchronous_commit", "on") == "on" and params.get("fsync", "on") == "on",
          "cloudnativepg: synchronous_commit and fsync on")
    initdb = cspec.get("bootstrap", {}).get("initdb", {})
    check(secret_ref("PGPASSWORD").get("name") == f"{name}-app" and secret_ref("PGPASSWORD").get("key") == "password",
          f"kubernetes-cluster: PGPASSWORD from CloudNativePG's {name}-app Secret, key password")
    ca = volumes.get("postgres-ca", {}).get("secret", {})
    check(ca.get("secretName") == f"{name}-ca" and [i["key"] for i in ca.get("items", [])] == ["ca.crt"],
          f"kubernetes-cluster: the database CA from {name}-ca, ca.crt only")
    # The documented DSN Secret: host <cluster>-rw, the bootstrap database and owner, the CA
    # under its mount, no password.
    text = (cnpg_dir / "cluster.yaml").read_text(encoding="utf-8")
    m = re.search(r"--from-literal=dsn='([^']*)'", re.sub(r"\n#\s+", " ", text))
    if check(m, "cloudnativepg: the comment shows how to create the DSN Secret"):
        f = dsn_fields(m.group(1))
        check(f.get("host") == f"{name}-rw", f"cloudnativepg: the DSN's host is the Service {name}-rw")
        check(f.get("dbname") == initdb.get("database") and f.get("user") == initdb.get("owner"),
              "cloudnativepg: the DSN's dbname and user are the bootstrap database and owner")
        check("password" not in f, "cloudnativepg: no password in the DSN")
        check(f.get("sslmode") == "verify-full" and any(f.get("sslrootcert", "").startswith(p + "/")
              for p, n in mounts.items() if n == "postgres-ca"),
              "cloudnativepg: the DSN verifies the server against the mounted CA")
    dsn_secret = secret_ref(dsn.group(1)).get("name") if dsn else None
    check(dsn_secret and f"secret generic {dsn_secret} " in text,
          "cloudnativepg: the comment creates the DSN Secret the pods read")


def check_patroni(known):
    cfg = (load_yaml_docs(PATRONI / "patroni.yml", "patroni/patroni.yml") or [{}])[0]
    dcs = cfg.get("bootstrap", {}).get("dcs", {})
    check(dcs.get("synchronous_mode") == "quorum" and dcs.get("synchronous_node_count") == 1,
          "patroni: quorum commit, ANY 1 (synchronous_mode quorum, synchronous_node_count 1)")
    check(dcs.get("synchronous_mode_strict") is True, "patroni: synchronous_mode_strict (no fallback to async)")
    params = dcs.get("postgresql", {}).get("parameters", {})
    check(str(params.get("synchronous_commit")) == "on" and str(params.get("fsync", "on")) == "on",
          "patroni: synchronous_commit and fsync on")
    check(len(cfg.get("etcd3", {}).get("hosts", [])) == 3, "patroni: three etcd members")
    pg = cfg.get("postgresql", {})
    check("/15/" in pg.get("bin_dir", "") and pg.get("data_dir"), "patroni: PostgreSQL 15 binaries and a data_dir")
    check(all(k in pg.get("authentication", {}) for k in ("superuser", "replication")),
          "patroni: superuser and replication credentials")
    node_port = pg.get("connect_address", ":").rsplit(":", 1)[1]
    cluster_known = cluster_known_flags(known)
    flags_text = (PATRONI / "pumptwind-cluster.flags").read_text(encoding="utf-8")
    check_flag_text("deploy/patroni/pumptwind-cluster.flags", flags_text, cluster_known)
    values = flag_values(flags_text)
    check(values.get("store") == "postgres", "patroni flags: --store=postgres")
    for f in ("postgres_schema", "cluster_shards", "cluster_lease_ttl"):
        check(f in values, f"patroni flags: --{f} is set")
    for f in sorted(NOT_WITH_POSTGRES & set(values)):
        check(False, f"patroni flags: --{f} does not apply to --store=postgres")
    dropin = (PATRONI / "pumptwind.service.d/cluster.conf").read_text(encoding="utf-8")
    exec_start = re.search(r"^ExecStart=(/.*?)(?<!\\)$", dropin, re.M | re.S)
    check(re.search(r"^ExecStart=$", dropin, re.M) and exec_start,
          "patroni drop-in: clears and replaces ExecStart")
    cmd = exec_start.group(1).replace("\\\n", " ") if exec_start else ""
    flags = dict(re.findall(r'"?--([a-z0-9_]+)=([^"\s]*(?:[^"\n]*")?)', cmd))
    flags = {k: v.rstrip('"') for k, v in flags.items()}
    for f in flags:
        check(f in cluster_known, f"patroni drop-in: --{f} is a pumptwind flag")
    for f in ("config", "postgres_dsn", "cluster_replica", "cluster_advertise"):
        check(f in flags, f"patroni drop-in: --{f} is set")
    dsn_m = re.search(r'"--postgres_dsn=([^"]*)"', cmd)
    f = dsn_fields(dsn_m.group(1)) if dsn_m else {}
    check(len(f.get("host", "").split(",")) == 3 and f.get("target_session_attrs") in ("read-write", "primary"),
          "patroni drop-in: the DSN lists the 3 database nodes and asks for the writable one")
    check(f.get("port") == node_port, "patroni drop-in: the DSN's port is the nodes' PostgreSQL port")
    check("password" not in f, "patroni drop-in: no password in the DSN")
    check(re.search(r"^Environment=PGPASSFILE=%d/(\S+)$", dropin, re.M)
          and re.search(r"^LoadCredential=" + re.escape(re.search(r"PGPASSFILE=%d/(\S+)", dropin).group(1)) + ":", dropin, re.M),
          "patroni drop-in: PGPASSFILE is a credential the unit loads")
    if f.get("sslrootcert", "").startswith("%d/"):
        cred = f["sslrootcert"][3:]
        check(re.search(r"^LoadCredential=" + re.escape(cred) + ":", dropin, re.M),
              f"patroni drop-in: sslrootcert {cred} is a credential the unit loads")
    port = flags.get("cluster_advertise", ":").rsplit(":", 1)[1]
    check(port == values.get("listen", ":").rsplit(":", 1)[1], "patroni drop-in: --cluster_advertise port == --listen port")
    analyze = shutil.which("systemd-analyze")
    if analyze:
        with tempfile.TemporaryDirectory() as d:
            unit = (DEPLOY / "systemd/pumptwind.service").read_text(encoding="utf-8")
            (pathlib.Path(d) / "pumptwind.service").write_text(unit.replace("/usr/bin/pumptwind", "/bin/true"))
            (pathlib.Path(d) / "pumptwind.service.d").mkdir()
            (pathlib.Path(d) / "pumptwind.service.d/cluster.conf").write_text(dropin.replace("/usr/bin/pumptwind", "/bin/true"))
            r = subprocess.run([analyze, "verify", str(pathlib.Path(d) / "pumptwind.service")],
                               capture_output=True, text=True)
            check(r.returncode == 0, f"systemd-analyze verify accepts the unit with the cluster drop-in {r.stderr.strip()}")
    # Every file of the README's table exists.
    readme = (PATRONI / "README.md").read_text(encoding="utf-8")
    for name in re.findall(r"^\| `([^`]+)` \|", readme, re.M):
        check((PATRONI / name).is_file(), f"patroni/README.md: {name} exists")


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
    check_k8s_cluster(known)
    check_patroni(known)
    check_grafana()
    check_host_files(known)
    failed = [m for ok, m in results if not ok]
    for m in failed:
        print("FAIL:", m)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
