"""Grafana dashboards from the collectors' specs: one per collector, and the overview (overview.yaml).

Every query is built from a spec's metric (its name, type, labels, unit and dashboard hints), so that a
dashboard cannot ask for a metric that no exporter exports."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

from exporters._lib import yamlfile
from exporters._lib.spec import Metric, Panel, SelfSpec, Spec
from exporters._lib.yamlfile import YamlError

from . import panels as p

HERE = Path(__file__).resolve().parent
OVERVIEW, OVERVIEW_SCHEMA = HERE / "overview.yaml", HERE / "overview.schema.json"


def variable(name: str, label: str, query: str) -> g.Template:
    template = g.Template(name=name, label=label, query=query, dataSource=p.DATASOURCE, includeAll=True, multi=True,
                          allValue=".*", refresh=2)  # 2: when the time range changes
    template._current = {"selected": True, "text": "All", "value": "$__all"}  # Grafana's own spelling of All
    return template


def templating(cgroup_metrics: list[str]) -> g.Templating:
    """datasource, job and instance always; container, pod and cgroup when a metric of the dashboard has a
    cgroup label. Container and pod come from lmp_cgroup_info and narrow both the cgroups offered and every
    panel (panels.narrowed); All (the default, everywhere) includes cgroup="other", so that the panels'
    totals stay whole."""
    host = 'job=~"$job", instance=~"$instance"'
    variables = [
        g.Template(name="datasource", label="Data source", query="prometheus", type="datasource", default="Prometheus"),
        variable("job", "Job", "label_values(lmp_exporter_build_info, job)"),
        variable("instance", "Host", 'label_values(lmp_exporter_build_info{job=~"$job"}, instance)'),
    ]
    if cgroup_metrics:
        variables += [
            variable("container", "Container", f'label_values(lmp_cgroup_info{{{host}}}, container_name)'),
            variable("pod", "Pod UID", f'label_values(lmp_cgroup_info{{{host}}}, pod_uid)'),
            variable("cgroup", "cgroup", f'label_values(lmp_cgroup_info{{{host}, container_name=~"$container", '
                                         f'pod_uid=~"$pod"}}, cgroup)'),
        ]
    return g.Templating(list=variables)


def cgroup_metrics(metrics: list[Metric]) -> list[str]:
    names = []
    for m in metrics:
        if any(label.name == "cgroup" for label in m.labels):
            names += [f"{m.name}_bucket"] if m.type == "histogram" else [m.name]
    return names


def dashboard(uid: str, title: str, description: str, rows: list[tuple[str, list[g.Panel]]],
              metrics: list[Metric]) -> g.Dashboard:
    return g.Dashboard(
        uid=uid, title=title, description=description, tags=["lmp", "ebpf"], timezone="browser", refresh="10s",
        time=g.Time("now-1h", "now"), templating=templating(cgroup_metrics(metrics)),
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR, panels=p.layout(rows),
        links=[g.DashboardLink(title="LMP", type="dashboards", tags=["lmp"], asDropdown=True, includeVars=True,
                               keepTime=True)],
    ).auto_panel_ids()


def has_hash_maps(spec: Spec) -> bool:
    """Whether the kernel code declares a hash map (the only kind that fills up; arrays are fixed)."""
    return re.search(r"__uint\(type, BPF_MAP_TYPE_(?:PERCPU_|LRU_|LRU_PERCPU_)?HASH\)", spec.source.read_text()) is not None


def exporter_panels(spec: Spec) -> list[g.Panel]:
    """The collector's own exporter: is it up and attached, how long its scrapes take, how full its maps are."""
    sel = p.selector(extra=f'collector="{spec.name}"')
    panels = [
        p.timeseries("Exporter up, programs attached", "up: Prometheus reaches the exporter (1); attached: each "
                     "hook has its program (1).", [p.target(f"up{{{sel}}}", "up {{instance}}", "A"),
                     p.target(f"lmp_exporter_program_attached{{{sel}}}", "{{hook}}", "B")], "short"),
        p.timeseries("Scrape duration", "How long reading the BPF maps took at each scrape.",
                     [p.target(f"lmp_exporter_scrape_duration_seconds{{{sel}}}", "{{instance}}")], "s"),
        p.timeseries("Events lost to full maps per second", "lmp_exporter_map_overflow_total: events dropped "
                     "because a map was full; the collector's counts are that much low.",
                     [p.target(f"rate(lmp_exporter_map_overflow_total{{{sel}}}[$__rate_interval])", "{{map}}")],
                     "ops"),
        p.timeseries("Series against budget", "lmp_exporter_series: series the last scrape exported; at the budget "
                     "(series_budget) the least active cgroups fold into cgroup=\"other\", totals kept exact.",
                     [p.target(f"lmp_exporter_series{{{sel}}}", "series {{instance}}", "A"),
                      p.target(f"lmp_exporter_series_budget{{{sel}}}", "budget {{instance}}", "B")], "short"),
    ]
    if has_hash_maps(spec):
        panels.append(p.timeseries("Map fill", "Each hash map's entries over its capacity; at 100% new keys are "
                                   "dropped.", [p.target(f"lmp_exporter_map_entries{{{sel}}} / "
                                                         f"lmp_exporter_map_capacity{{{sel}}}", "{{map}}")],
                                   "percentunit"))
    return panels


def collector_dashboard(spec: Spec) -> g.Dashboard:
    hooks = ", ".join(f"`{h}`" for h in spec.hooks)
    about = (f"**{spec.name}**: {spec.summary}\n\nHooks: {hooks}. What each panel means, and what the "
             f"collector costs: its README, `exporters/{spec.name}/README.md`, also shown on the collector's "
             f"page of the LMP admin.")
    rows = [(spec.name, [p.text("About", about)])]
    rows += [(m.name, p.for_metric(m)) for m in spec.metrics if not m.panel.hide]
    rows.append(("Exporter", exporter_panels(spec)))
    return dashboard(f"lmp-{spec.name}", f"LMP / {spec.name}", spec.summary, rows, list(spec.metrics))


def overview_panel(raw: dict[str, Any], metrics: dict[str, Metric]) -> tuple[g.Panel, Metric | None]:
    if "expr" in raw:
        expr = raw["expr"].replace("$selector", p.selector())
        return p.timeseries(raw["title"], raw.get("title", ""), [p.target(" ".join(expr.split()),
                                                                          raw.get("legend", ""))],
                            raw.get("unit", "short")), None
    metric = metrics[raw["metric"]]
    metric = replace(metric, panel=Panel(tuple(raw.get("by", ())), raw.get("topk"), raw["title"]))
    show = {"rate": lambda m: p.counter(m)[0], "increase": p.increase, "quantiles": p.quantiles,
            "time": p.time_spent}[raw["show"]]
    return show(metric), metric


def overview_dashboard(specs: list[Spec], self_spec: SelfSpec) -> g.Dashboard:
    doc = yamlfile.load(OVERVIEW, OVERVIEW_SCHEMA)
    metrics = {m.name: m for spec in specs for m in spec.metrics} | {m.name: m for m in self_spec.metrics}
    rows, used = [], []
    for i, row in enumerate(doc["rows"]):
        built = []
        for j, raw in enumerate(row["panels"]):
            if "metric" in raw and raw["metric"] not in metrics:
                raise YamlError(OVERVIEW, yamlfile.line_of(doc, ["rows", i, "panels", j]),
                                f"no collector exports {raw['metric']}")
            panel, metric = overview_panel(raw, metrics)
            built.append(panel)
            used += [metric] if metric else []
        rows.append((row["title"], built))
    return dashboard("lmp-overview", doc["title"], doc["description"], rows, used)


def to_json(board: g.Dashboard) -> str:
    return json.dumps(board.to_json_data(), sort_keys=True, indent=2, cls=DashboardEncoder) + "\n"


def dashboards(specs: list[Spec], self_spec: SelfSpec) -> dict[str, str]:
    """File name -> JSON of every dashboard."""
    out = {f"lmp-{spec.name}.json": to_json(collector_dashboard(spec)) for spec in specs}
    out["lmp-overview.json"] = to_json(overview_dashboard(specs, self_spec))
    return out
