#!/usr/bin/python3
"""Every metric the rules and the dashboard use is in docs/metrics.md, with its labels.

Checks, for deploy/prometheus/pumptwin-rules.yml and deploy/grafana/pumptwin-dashboard.json:
  - each metric name (histogram series by their base name) is a catalogue entry;
  - each recorded series (level:metric:ops) used is defined by a `record:` rule;
  - each label matcher names a label of that metric in the catalogue, and an exact matcher
    on a label whose values the catalogue enumerates uses one of those values;
  - histogram suffixes are used only on histograms, `_total` names are counters.
Exit 0 and "N passed, 0 failed" when clean; exit 1 listing every problem otherwise.
"""
import re
import sys

import metric_names as mn

# Labels every scraped series carries besides the catalogue's own.
TARGET_LABELS = {"job", "instance", "le", "__name__", "pod", "namespace", "service", "container", "endpoint"}


def main():
    known = mn.catalogue()
    if len(known) < 20:
        print(f"docs/metrics.md: only {len(known)} metrics parsed; table format changed?")
        return 1
    exprs, recorded = mn.rule_exprs()
    exprs += mn.dashboard_exprs()
    problems, checked = [], 0
    for where, expr in exprs:
        for tok in mn._metric_tokens(expr):
            checked += 1
            if tok in mn.PROMETHEUS_SYNTHETIC:
                continue
            if ":" in tok:
                if tok not in recorded:
                    problems.append(f"{where}: recorded series {tok} has no `record:` rule")
                continue
            base = mn.base_name(tok, known)
            if base not in known:
                problems.append(f"{where}: {tok} is not in docs/metrics.md")
                continue
            mtype = known[base][0]
            if base != tok and mtype != "histogram":
                problems.append(f"{where}: {tok}: {base} is a {mtype}, not a histogram")
            if base == tok and mtype == "histogram":
                problems.append(f"{where}: {tok} is a histogram: use _bucket/_sum/_count")
            if tok.endswith("_total") and mtype != "counter":
                problems.append(f"{where}: {tok} ends in _total but is a {mtype}")
        for name, label, op, value in mn.selectors(expr):
            if ":" in name or name in mn.PROMETHEUS_SYNTHETIC:
                continue
            base = mn.base_name(name, known)
            if base not in known or label in TARGET_LABELS:
                continue
            checked += 1
            labels = mn.catalogue_label_values(known[base][1])
            if label not in labels:
                problems.append(f"{where}: {name}: label {label} is not in docs/metrics.md "
                                f"(has: {', '.join(sorted(labels)) or 'none'})")
                continue
            allowed = labels[label]
            if allowed and op in ("=", "!=") and value not in allowed and not value.startswith("$"):
                problems.append(f"{where}: {name}{{{label}{op}\"{value}\"}}: value not in "
                                f"{sorted(allowed)}")
            if allowed and op in ("=~", "!~") and re.fullmatch(r"[A-Za-z0-9_|]+", value):
                for v in value.split("|"):
                    if v not in allowed:
                        problems.append(f"{where}: {name}{{{label}{op}\"{value}\"}}: {v} not in "
                                        f"{sorted(allowed)}")
    for p in problems:
        print("FAIL:", p)
    print(f"checked {checked} metric references in {len(exprs)} expressions")
    print(f"{checked - len(problems)} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
