"""The generated dashboards, rules and metric reference: in sync with the specs, and well formed."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

import dashboards
from dashboards.panels import CGROUPS
from exporters._lib import catalog, paths
from exporters._lib.spec import load_self
from tests.conftest import LMP, ROOT

BOARDS = sorted(paths.GRAFANA_DIR.glob("*.json"))


def test_committed_files_are_what_the_specs_generate():
    stale = dashboards.stale(dashboards.generate())
    assert not stale, f"out of date (run `lmp dashboards build`): {[str(p.relative_to(ROOT)) for p in stale]}"


def test_check_mode_fails_on_a_stale_file(tmp_path, monkeypatch):
    result = subprocess.run([*LMP, "dashboards", "build", "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    files = dashboards.generate()
    target = paths.GRAFANA_DIR / "lmp-runqlat.json"
    files[target] = files[target] + " "  # what an edit by hand would do
    assert dashboards.stale(files) == [target]


def test_one_dashboard_per_collector_and_the_overview():
    assert {p.stem for p in BOARDS} == {f"lmp-{n}" for n in catalog.names()} | {"lmp-overview"}


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b(lmp_[a-z0-9_]+|up)\b", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_dashboard_queries_name_only_exported_metrics(path):
    board = json.loads(path.read_text())
    known = {m.name for n in catalog.names() for m in catalog.load(n).metrics} | {m.name for m in load_self().metrics}
    known |= {"up"}
    panels = [p for p in board["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    assert {v["name"] for v in board["templating"]["list"]} >= {"datasource", "job", "instance"}
    for panel in panels:
        for t in panel.get("targets", []):
            assert metric_names(t["expr"]) <= known, (panel["title"], t["expr"])
            assert 'job=~"$job"' in t["expr"] and 'instance=~"$instance"' in t["expr"], t["expr"]
            # each cgroup selector narrowed to the chosen containers' and pods' cgroups (the cgroup at All)
            assert t["expr"].count('cgroup=~"$cgroup"') == t["expr"].count(CGROUPS), t["expr"]
        if panel["type"] in ("timeseries", "heatmap"):
            assert panel["targets"], panel["title"]
    # No two panels overlap on Grafana's grid.
    cells = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not mine & cells, panel["title"]
        cells |= mine


def test_cgroup_variable_where_labels_allow():
    def variables(name: str) -> set[str]:
        board = json.loads((paths.GRAFANA_DIR / f"lmp-{name}.json").read_text())
        return {v["name"] for v in board["templating"]["list"]}
    assert "cgroup" in variables("pagefault") and "cgroup" in variables("overview")
    assert "cgroup" not in variables("runqlat")


def test_histograms_get_a_heatmap_and_quantiles_in_base_units():
    board = json.loads((paths.GRAFANA_DIR / "lmp-biolatency.json").read_text())
    by_title = {p["title"]: p for p in board["panels"]}
    heatmap = by_title["block_io_latency_seconds: distribution"]
    assert heatmap["type"] == "heatmap" and heatmap["yAxis"]["format"] == "s"
    quantiles = by_title["block_io_latency_seconds: p50, p90, p99"]
    assert [t["expr"].split(",")[0] for t in quantiles["targets"]] == [
        "histogram_quantile(0.5", "histogram_quantile(0.9", "histogram_quantile(0.99"]
    assert quantiles["fieldConfig"]["defaults"]["unit"] == "s"
    throughput = next(p for p in board["panels"] if p["title"].startswith("block_io_bytes_total"))
    assert throughput["fieldConfig"]["defaults"]["unit"] == "Bps"
