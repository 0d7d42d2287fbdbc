#!/usr/bin/python3
"""Metric names used by the Prometheus rules and the Grafana dashboard, and the catalogue.

Library for check_metrics_catalogue.py and check_metrics_live.sh; run directly it prints the
metric names the rules and the dashboard use, one a line (base names: a histogram's
`_bucket`/`_sum`/`_count` series count as the histogram).

Only the standard library and python3-yaml (Debian `python3-yaml`).
"""
import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/pumptwin-rules.yml"
DASHBOARD = ROOT / "deploy/grafana/pumptwin-dashboard.json"
CATALOGUE = ROOT / "docs/metrics.md"

# Series Prometheus itself adds to every target: never in a server's /metrics.
PROMETHEUS_SYNTHETIC = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_TOKEN = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# Selector of a metric with a label matcher block: name{label op "value", ...}
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def _metric_tokens(expr):
    """Identifiers of an expression that name metrics of ours (or `up`) or recorded series."""
    bare = _STRING.sub('""', expr)
    bare = re.sub(r"\{[^}]*\}", "{}", bare)  # label matchers name labels, not metrics
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # range durations
    out = []
    for tok in _TOKEN.findall(bare):
        if ":" in tok or tok.startswith(("pumptwin_", "process_")) or tok in PROMETHEUS_SYNTHETIC:
            out.append(tok)
    return out


def selectors(expr):
    """(metric, label, op, value) for every label matcher of a named selector."""
    out = []
    for name, body in _SELECTOR.findall(expr):
        for label, op, value in _MATCHER.findall(body):
            out.append((name, label, op, value))
    return out


def load_rules():
    with open(RULES, encoding="utf-8") as f:
        return yaml.safe_load(f)


def rule_exprs():
    """(where, expr) of every rule, and the set of recorded series names."""
    exprs, recorded = [], set()
    for group in load_rules()["groups"]:
        for rule in group["rules"]:
            name = rule.get("record") or rule.get("alert")
            if "record" in rule:
                recorded.add(rule["record"])
            exprs.append((f"rule {name}", rule["expr"]))
    return exprs, recorded


def dashboard_exprs():
    with open(DASHBOARD, encoding="utf-8") as f:
        dash = json.load(f)
    out = []

    def walk(node, where):
        if isinstance(node, dict):
            title = node.get("title", where)
            for key in ("expr", "query"):
                value = node.get(key)
                if isinstance(value, str) and value:
                    out.append((f"dashboard '{title}'", value))
                elif isinstance(value, dict) and isinstance(value.get("query"), str):
                    out.append((f"dashboard variable '{title}'", value["query"]))
            for child in node.values():
                walk(child, title)
        elif isinstance(node, list):
            for child in node:
                walk(child, where)

    walk(dash, "dashboard")
    return out


def catalogue():
    """{metric: (type, labels cell)} from the tables of docs/metrics.md."""
    metrics = {}
    for line in CATALOGUE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        if re.fullmatch(r"[a-z_:][a-z0-9_:]*", name):
            metrics[name] = (cells[1], cells[2])
    return metrics


def catalogue_label_values(labels_cell):
    """{label: set(values) or None}: values only where the cell lists them as `l` = `a`, `b`."""
    out = {}
    for part in re.split(r";", re.sub(r"\([^)]*\)", "", labels_cell)):
        names = re.findall(r"`([^`]+)`", part)
        if not names:
            continue
        if "=" in part:
            out[names[0]] = set(names[1:])
        else:
            for n in names:
                out.setdefault(n, None)
    return out


def base_name(token, known):
    """Histogram series -> histogram name when the histogram is known."""
    for suffix in HISTOGRAM_SUFFIXES:
        if token.endswith(suffix) and token[: -len(suffix)] in known:
            return token[: -len(suffix)]
    return token


def used_metrics():
    """Sorted base names of every server metric the rules and dashboard use (no `up`)."""
    exprs, recorded = rule_exprs()
    exprs += dashboard_exprs()
    known = catalogue()
    names = set()
    for _, expr in exprs:
        for tok in _metric_tokens(expr):
            if ":" in tok or tok in PROMETHEUS_SYNTHETIC:
                continue
            names.add(base_name(tok, known))
    return sorted(names)


if __name__ == "__main__":
    for n in used_metrics():
        print(n)
    sys.exit(0)
