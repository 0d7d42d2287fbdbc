#!/usr/bin/python3
"""The alert rules keep their contract with the runbook and the unit tests.

For every alert in deploy/prometheus/pumptwin-rules.yml:
  - labels.severity is critical or warning, labels.audience is clinical or operations;
  - annotations summary, description and runbook_url exist; runbook_url is
    https://pumptwin.example/docs/operations.md#<alert name in lower case>;
  - docs/operations.md has a heading whose GitHub anchor is that name in lower case;
  - deploy/prometheus/tests/*.yml has a case where it fires (non-empty exp_alerts) and a case
    where it must stay silent (empty exp_alerts).
And every rule file in tests refers to the rules file. Needs python3-yaml.
"""
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/pumptwin-rules.yml"
TESTS = ROOT / "deploy/prometheus/tests"
RUNBOOK = ROOT / "docs/operations.md"
RUNBOOK_URL = "https://pumptwin.example/docs/operations.md#"


def github_anchor(heading):
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def main():
    results = []

    def check(ok, msg):
        results.append((bool(ok), msg))

    alerts = []
    for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                alerts.append(rule)
    check(len(alerts) >= 12, f"{len(alerts)} alert rules found")
    names = [a["alert"] for a in alerts]
    check(len(names) == len(set(names)), "alert names unique")

    anchors = set()
    if RUNBOOK.is_file():
        in_code = False
        for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                in_code = not in_code
            m = re.match(r"^#{1,6}\s+(.*)$", line)
            if m and not in_code:
                anchors.add(github_anchor(m.group(1)))
    check(RUNBOOK.is_file(), "docs/operations.md exists")

    fires, silent, files = set(), set(), 0
    for path in sorted(TESTS.glob("*.yml")):
        files += 1
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        check("../pumptwin-rules.yml" in doc.get("rule_files", []), f"{path.name} loads ../pumptwin-rules.yml")
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []) or []:
                (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    check(files >= 1, "promtool test files exist")

    for a in alerts:
        n = a["alert"]
        labels, ann = a.get("labels", {}), a.get("annotations", {})
        check(labels.get("severity") in ("critical", "warning"), f"{n}: severity critical|warning")
        check(labels.get("audience") in ("clinical", "operations"), f"{n}: audience clinical|operations")
        for k in ("summary", "description", "runbook_url"):
            check(ann.get(k), f"{n}: annotation {k}")
        check(ann.get("runbook_url") == RUNBOOK_URL + n.lower(), f"{n}: runbook_url is {RUNBOOK_URL}{n.lower()}")
        check(n.lower() in anchors, f"{n}: docs/operations.md has a section '{n}'")
        check(n in fires, f"{n}: a promtool test where it fires")
        check(n in silent, f"{n}: a promtool test where it stays silent")
    for n in (fires | silent) - set(names):
        check(False, f"tests name an alert that does not exist: {n}")

    failed = [m for ok, m in results if not ok]
    for m in failed:
        print("FAIL:", m)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
