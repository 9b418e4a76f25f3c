"""Every query of every generated dashboard, and every alert expression, against a real Prometheus: `lmp run`
with every collector (and every option that adds a metric) on, Prometheus finding the exporters through the
admin's service discovery and loading the generated rules, and a workload that makes each metric move.
Each panel query must be valid PromQL and return data; each alert must return what the workload implies."""
from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from dashboards import alerts
from exporters._lib import catalog, paths
from exporters._lib.spec import load_self
from tests.conftest import ROOT, VethPair, connect_from, free_ports, made_cgroup, made_veth_pair, send_datagrams
from tests.lmprun import Api, Run, lmp_running, query, wait_for

HOST = socket.gethostname()
VARIABLES = {"$job": "lmp", "$instance": HOST, "$cgroup": ".*", "$container": ".*", "$pod": ".*", "$__rate_interval": "1m"}
# What each alert returns after the workload, with the shipped thresholds or with every threshold at 0;
# an alert named in none of these is only checked to be PromQL that Prometheus evaluates.
FIRES = {"LmpOomKill", "LmpBlockIoErrors"}  # the workload makes an OOM kill and failing reads
FIRES_AT_ZERO = {"LmpRunqueueLatencyHigh", "LmpBlockIoLatencyHigh", "LmpTcpRetransmitRatioHigh",
                 "LmpHttpErrorRatioHigh", "LmpHttpLatencyHigh", "LmpPostgresErrorRatioHigh"}
QUIET = {"LmpExporterProgramDetached", "LmpExporterScrapeFailing", "LmpExporterMapOverflowing",
         "LmpComponentPolicyRefused", "LmpExporterAtSeriesBudget"}
DOWN = {"LmpExporterDown"}  # tested by stopping an exporter


@dataclass
class Stack:
    run: Run
    prometheus: int
    api: Api

    def query(self, promql: str) -> list[dict]:
        return query(self.prometheus, promql)


def write_config(folder: Path, ports: dict[str, int], policies: dict[str, dict]) -> Path:
    """Every collector on, with every boolean option (latency, cgroup, srtt ...) on, so that every metric a
    dashboard shows exists, and the function components with their `policy`; the shipped rule file."""
    lines = ["prometheus:", f"  listen: 127.0.0.1:{ports['prometheus']}", "  scrape_interval: 1s",
             f"  data_dir: {folder / 'prometheus'}", f"  rule_files: [{paths.ALERT_RULES}]",
             "admin:", f"  listen: 127.0.0.1:{ports['admin']}", f"  data_dir: {folder / 'data'}",
             f"  run_dir: {folder / 'run'}", "collectors:"]
    for name in catalog.names():
        spec = catalog.load(name)
        lines += [f"  {name}:", "    enabled: true", f"    listen: 127.0.0.1:{ports[name]}"]
        flags = [f"      {o.name}: true" for o in spec.options.values() if o.type == "bool"]
        lines += ["    options:", *flags] if flags else []
        lines += [f"    policy: {json.dumps(policies[name])}"] if name in policies else []  # JSON is YAML
    path = folder / "lmp.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def function_policies(pair: VethPair, group_path: str, port: int) -> dict[str, dict]:
    """The function components in observe mode (they change nothing), on the test's own veth pair and
    cgroup, each with a rule that the workload's traffic matches."""
    return {"netguard": {"interfaces": [pair.interface], "blocklist": [pair.PEER_V4[0]]},
            "connguard": {"cgroups": [group_path], "destinations": [{"cidr": "127.0.0.1", "ports": [port]}]}}


def guarded_traffic(pair: VethPair, group: Path, listener: socket.socket) -> None:
    """Datagrams through netguard from a listed and an unlisted source; connects from connguard's cgroup to
    the listed port."""
    receiver = pair.receiver()
    for source in pair.PEER_V4:
        send_datagrams(pair.sender(source), receiver, 50)
    receiver.close()
    host, port = listener.getsockname()
    connect_from(group, f"{host}:{port}", f"{host}:{port}")


def workload(scratch: Path) -> None:
    """Each collector's own workload (exporters/NAME/workload.py), which makes its panels show data; the
    others see enough of the host's own activity and of these."""
    for name in catalog.names():
        spec = catalog.load(name)
        if spec.workload.is_file():
            runpy.run_path(str(spec.workload))["run"](scratch)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with made_veth_pair() as pair, made_cgroup() as (group, group_path), socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield from _stack(function_policies(pair, group_path, listener.getsockname()[1]),
                          lambda: guarded_traffic(pair, group, listener))


def _stack(policies: dict[str, dict], guarded: Callable[[], None]) -> Iterator[Stack]:
    folder = Path(tempfile.mkdtemp(dir=ROOT, prefix=".lmp-test-prometheus-"))  # on the real disk
    ports = free_ports((*catalog.names(), "prometheus", "admin"))
    try:
        with lmp_running(write_config(folder, ports, policies), set(catalog.names()), ports["prometheus"]) as started:
            workload(folder)
            guarded()
            time.sleep(5)  # a few more scrapes, and rule evaluations, after the workload
            yield Stack(started.run, ports["prometheus"], Api(ports["admin"], "admin", started.password))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fill(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def board_targets(path: Path) -> list[tuple[str, str]]:
    board = json.loads(path.read_text())
    return [(panel["title"], t["expr"]) for panel in board["panels"] for t in panel.get("targets", [])]


@pytest.mark.parametrize("path", sorted(paths.GRAFANA_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_panel_query_returns_data(stack, path):
    empty = [(title, expr) for title, expr in board_targets(path) if not stack.query(fill(expr))]
    assert not empty, f"panels whose query returned nothing: {empty}"


@pytest.mark.parametrize("path", sorted(paths.GRAFANA_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_template_variable_has_values(stack, path):
    for variable in json.loads(path.read_text())["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
        if not match:
            continue  # the data source variable
        selector, label = fill(match.group(1)), match.group(2)
        values = {r["metric"].get(label) for r in stack.query(f"group by ({label}) ({selector})")} - {None}
        if variable["name"] in ("container", "pod"):  # none on a host without containers: the series is there
            assert stack.query(selector), f"{variable['name']}: no {selector}"
            continue
        assert values, f"{variable['name']}: no values"
        if variable["name"] == "instance":
            assert values == {HOST}


def alert_exprs(thresholds: dict[str, float] | None = None) -> dict[str, str]:
    cfg = alerts.load_config()
    if thresholds is not None:
        cfg = alerts.AlertConfig(cfg.selector, cfg.runbook_url, thresholds)
    specs = [catalog.load(n) for n in catalog.names()]
    doc = YAML(typ="safe").load(alerts.rule_file(specs, load_self(), cfg))
    return {r["alert"]: r["expr"] for group in doc["groups"] for r in group["rules"]}


def test_every_alert_named_here_exists():
    assert FIRES | FIRES_AT_ZERO | QUIET | DOWN <= set(alert_exprs())


def test_alerts_return_what_the_workload_implies(stack):
    shipped = alert_exprs()
    for name in FIRES:
        assert stack.query(shipped[name]), f"{name} does not fire after the workload"
    for name in QUIET:
        assert not stack.query(shipped[name]), f"{name} fires"
        inner = re.sub(r"\s*(==|>=?)\s*(0|lmp_\w+\{[^}]*\})$", "", shipped[name])  # the series it watches exist
        assert stack.query(inner), f"{name}: {inner} returned nothing"
    specs = [catalog.load(n) for n in catalog.names()]
    at_zero = alert_exprs({k: 0.0 for s in specs for a in s.alerts for k, _ in a.thresholds})
    for name in FIRES_AT_ZERO:
        assert stack.query(at_zero[name]), f"{name} with a threshold of 0 returns nothing"
    for name in set(shipped) - FIRES - FIRES_AT_ZERO - QUIET - DOWN:  # an alert new here: valid PromQL, on real data
        stack.query(shipped[name])


def test_prometheus_loaded_the_rules_and_the_oom_alert_fires(stack):
    def firing() -> list[dict]:
        return stack.query('ALERTS{alertname="LmpOomKill", alertstate="firing"}')
    alert = wait_for(firing, timeout=30)[0]["metric"]
    assert alert["comm"] == "lmp-oom-victim" and alert["instance"] == HOST and alert["severity"] == "warning"


def test_a_stopped_exporter_is_down(stack):
    pid = stack.api.call("GET", "/components/skbdrop")["pid"]
    expr = alert_exprs()["LmpExporterDown"]
    os.kill(pid, signal.SIGSTOP)  # alive (the supervisor keeps it) but not answering
    try:
        # Exactly it, once Prometheus has noticed; another exporter's one slow scrape (1 s timeout, 15
        # exporters on 2 CPUs) may show it down at the same instant, but not for long.
        wait_for(lambda: {r["metric"]["collector"] for r in stack.query(expr)} == {"skbdrop"}, timeout=60)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: not stack.query(expr), timeout=60)
