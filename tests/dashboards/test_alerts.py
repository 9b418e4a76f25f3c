"""The generated alert rules: promtool checks and unit-tests them; each has its runbook section; the
thresholds' file is checked."""
from __future__ import annotations

import re
import subprocess

import pytest
from ruamel.yaml import YAML

import dashboards
from exporters._lib import paths
from exporters._lib.yamlfile import YamlError
from tests.conftest import ROOT

RULES = paths.ALERT_RULES
RUNBOOK = ROOT / "docs" / "runbook.md"


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent)


def test_promtool_checks_the_rules():
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_every_alert_before_and_after_its_for():
    tests = RULES.parent / "lmp.rules.test.yml"
    result = promtool("test", "rules", tests.name)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (Lmp\w+)", tests.read_text()))
    assert tested == set(re.findall(r"alert: (Lmp\w+)", RULES.read_text())), "an alert without a unit test"


def test_every_alert_has_summary_description_severity_and_its_runbook_section():
    anchors = {line[3:].strip().lower() for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}
    doc = YAML(typ="safe").load(RULES.read_text())
    for group in doc["groups"]:
        for r in group["rules"]:
            assert r["labels"]["severity"] in ("info", "warning", "critical")
            assert r["annotations"]["summary"] and r["annotations"]["description"]
            assert "$" not in r["expr"], r["expr"]  # every placeholder was filled
            assert r["annotations"]["runbook_url"].rsplit("#", 1)[1] in anchors, r["alert"]


@pytest.mark.parametrize("edit, reason", [
    (lambda t: t.replace("thresholds: {}", "thresholds: {unused_threshold_seconds: 1}"),
     "thresholds no alert has: unused_threshold_seconds"),
    (lambda t: t.replace("thresholds: {}", "thresholds: {runqueue_latency_p99_seconds: fast}"), "is not of type"),
])
def test_a_bad_thresholds_file_is_refused_with_its_reason(tmp_path, edit, reason):
    path = tmp_path / "alerts.yaml"
    path.write_text(edit(paths.ALERTS_CONFIG.read_text()))
    with pytest.raises(YamlError, match=reason):
        dashboards.generate(path)


def test_an_alert_carries_its_thresholds_and_the_config_overrides_them(tmp_path):
    shipped = dashboards.generate()[RULES]
    assert "lmp_runqueue_latency_seconds_bucket{job=\"lmp\"}[5m]))) > 0.05" in shipped  # runqlat.yaml's
    path = tmp_path / "alerts.yaml"
    path.write_text(paths.ALERTS_CONFIG.read_text().replace("thresholds: {}", "thresholds: {runqueue_latency_p99_seconds: 0.2}"))
    text = dashboards.generate(path)[RULES]
    assert "lmp_runqueue_latency_seconds_bucket{job=\"lmp\"}[5m]))) > 0.2" in text


def test_an_alert_using_a_threshold_it_does_not_have_is_refused():
    from dashboards.alerts import AlertConfig, rule
    from exporters._lib.spec import Alert
    alert = Alert("LmpDemo", "up > $nowhere", "0m", "info", "s", "d", (("somewhere", 1.0),), "r", ({},))
    with pytest.raises(YamlError, match="uses nowhere, which are not among its thresholds"):
        rule(alert, "exporters/demo/demo.yaml", AlertConfig('job="lmp"', "http://x", {}))
