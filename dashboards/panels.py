"""House panel helpers for LMP's Grafana dashboards (grafanalib), the idea of grafanalib's weave.py: one
function per kind of panel, so that every dashboard shows a counter, a histogram or a gauge the same way.

Queries select with the dashboard's template variables: `job`, `instance` and, for metrics with a cgroup
label, `cgroup`, `container` and `pod` (narrowed()); `$__rate_interval` lets Grafana pick a rate window that
fits the scrape interval."""
from __future__ import annotations

from grafanalib import core as g

from exporters._lib.spec import Metric

DATASOURCE = "${datasource}"
WIDTH, HEIGHT = 12, 8  # two panels a row on Grafana's 24-column grid
QUANTILES = (0.5, 0.9, 0.99)
RATE_UNITS = {"seconds": "s", "bytes": "Bps", "": "ops"}  # per second, in Grafana's unit names
VALUE_UNITS = {"seconds": "s", "bytes": "bytes", "ratio": "percentunit", "": "short"}


def has_cgroup(metric: Metric | None) -> bool:
    return metric is not None and any(label.name == "cgroup" for label in metric.labels)


def selector(metric: Metric | None = None, extra: str = "") -> str:
    """The label matchers of the template variables (and `extra` ones)."""
    matchers = ['job=~"$job"', 'instance=~"$instance"']
    if has_cgroup(metric):
        matchers.append('cgroup=~"$cgroup"')
    return ", ".join([*matchers, *([extra] if extra else [])])


# The chosen containers' and pods' cgroups. lmp_cgroup_info names each cgroup an exporter shows, "other" and
# unnamed ones with empty labels, which All (".*") matches; series without a cgroup label (the collector's
# cgroup option off) match the exporter's lmp_exporter_build_info, which has neither label: they count
# while container and pod are All, and in no container's or pod's view.
IDENTITY = 'container_name=~"$container", pod_uid=~"$pod"'
CGROUPS = f"lmp_cgroup_info{{{selector(extra=IDENTITY)}}} or lmp_exporter_build_info{{{selector(extra=IDENTITY)}}}"


def narrowed(metric: Metric, expr: str) -> str:
    """`expr`, the metric's series (or their rate), kept for the cgroups of the chosen containers and pods
    (a cgroup variable left at All then still means those of the container), in parentheses."""
    return f"({expr} and on (job, instance, cgroup) ({CGROUPS}))" if has_cgroup(metric) else f"({expr})"


def target(expr: str, legend: str = "", ref: str = "A", heatmap: bool = False) -> g.Target:
    return g.Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE,
                    format="heatmap" if heatmap else "time_series")


def legend(labels: tuple[str, ...]) -> str:
    return " ".join("{{" + label + "}}" for label in labels) or "{{instance}}"


def by_clause(labels: tuple[str, ...]) -> str:
    return f"sum by ({', '.join(labels)}) " if labels else "sum "


def timeseries(title: str, description: str, targets: list[g.Target], unit: str, stack: bool = False) -> g.TimeSeries:
    return g.TimeSeries(title=title, description=description, dataSource=DATASOURCE, targets=targets, unit=unit,
                        legendDisplayMode="table", legendPlacement="right", legendCalcs=["mean", "max"],
                        fillOpacity=20 if stack else 0, stacking={"mode": "normal"} if stack else {},
                        tooltipMode="multi")


def counter_by(metric: Metric) -> tuple[str, ...]:
    """What a counter panel splits by: the spec's hint, else every label but cgroup (a variable)."""
    return metric.panel.by or tuple(label.name for label in metric.labels if label.name != "cgroup")


def rated(metric: Metric, series: str = "", fn: str = "rate", extra: str = "") -> str:
    """fn (rate, increase) of the metric's series (or its _bucket, _sum ... `series`), narrowed()."""
    return narrowed(metric, f"{fn}({series or metric.name}{{{selector(metric, extra)}}}[$__rate_interval])")


def rate_expr(metric: Metric, by: tuple[str, ...], series: str = "", fn: str = "rate") -> str:
    expr = f"{by_clause(by)}{rated(metric, series, fn)}"
    return f"topk({metric.panel.topk}, {expr})" if metric.panel.topk else expr


def counter(metric: Metric) -> list[g.Panel]:
    by = counter_by(metric)
    top = f"top {metric.panel.topk} " if metric.panel.topk else ""
    title = metric.panel.title or f"{top}{metric.name.removeprefix('lmp_')} per second" \
                                  f"{' by ' + ', '.join(by) if by else ''}"
    panels = [timeseries(title, metric.help, [target(rate_expr(metric, by), legend(by))],
                         RATE_UNITS[metric.unit], stack=not metric.panel.topk)]
    return panels + ([error_ratio(metric, by)] if metric.panel.errors else [])


def error_ratio(metric: Metric, by: tuple[str, ...]) -> g.TimeSeries:
    """RED's E: the share of a requests counter that are errors (the spec's `errors` matchers), by the hinted
    labels that the matchers do not name."""
    errors = metric.panel.errors or ""
    by = tuple(label for label in by if label not in errors)
    total = f"{by_clause(by)}{rated(metric)}"
    failed = f"{by_clause(by)}{rated(metric, extra=errors)}"
    return timeseries(f"{metric.name.removeprefix('lmp_').removesuffix('_total')}: error ratio"
                      f"{' by ' + ', '.join(by) if by else ''}", f"{metric.help} Errors: {errors}.",
                      [target(f"{failed} / {total}", legend(by))], "percentunit")


def increase(metric: Metric) -> g.TimeSeries:
    """For rare events (OOM kills): how many in each interval, which reads better than a tiny rate."""
    by = counter_by(metric)
    return timeseries(metric.panel.title or f"{metric.name.removeprefix('lmp_')} in each interval", metric.help,
                      [target(rate_expr(metric, by, fn="increase"), legend(by))], "short")


def gauge(metric: Metric) -> list[g.Panel]:
    by = counter_by(metric)
    expr = f"{by_clause(by)}{narrowed(metric, f'{metric.name}{{{selector(metric)}}}')}"
    return [timeseries(metric.panel.title or metric.name.removeprefix("lmp_"), metric.help,
                       [target(expr, legend(by))], VALUE_UNITS[metric.unit])]


def quantile_expr(metric: Metric, q: float, by: tuple[str, ...] = ()) -> str:
    labels = ", ".join(("le", *by))
    return (f"histogram_quantile({q}, sum by ({labels}) "
            f"{rated(metric, f'{metric.name}_bucket')})")


def heatmap(metric: Metric) -> g.Heatmap:
    buckets = f"sum by (le) {rated(metric, f'{metric.name}_bucket')}"
    return g.Heatmap(title=f"{metric.name.removeprefix('lmp_')}: distribution", description=metric.help,
                     dataSource=DATASOURCE, dataFormat="tsbuckets", targets=[target(buckets, "{{le}}", heatmap=True)],
                     yAxis=g.YAxis(format=VALUE_UNITS[metric.unit]), hideZeroBuckets=True, maxDataPoints=50)


def quantiles(metric: Metric) -> g.TimeSeries:
    targets = [target(quantile_expr(metric, q), f"p{round(q * 100)}", chr(65 + i)) for i, q in enumerate(QUANTILES)]
    return timeseries(metric.panel.title or f"{metric.name.removeprefix('lmp_')}: p50, p90, p99", metric.help,
                      targets, VALUE_UNITS[metric.unit])


def time_spent(metric: Metric) -> g.TimeSeries:
    """For a histogram of durations: the time spent per second (its _sum's rate), by the hinted labels."""
    by = metric.panel.by
    return timeseries(metric.panel.title or f"{metric.name.removeprefix('lmp_')}: time per second",
                      metric.help, [target(rate_expr(metric, by, f"{metric.name}_sum"), legend(by))], "s", stack=True)


def histogram(metric: Metric) -> list[g.Panel]:
    """A heatmap of the buckets, the quantiles over everything, and, with a `by` hint, the p99 and the
    event rate for each value of those labels."""
    panels: list[g.Panel] = [heatmap(metric), quantiles(metric)]
    by, name, unit = metric.panel.by, metric.name.removeprefix("lmp_"), VALUE_UNITS[metric.unit]
    if by:
        top = f"topk({metric.panel.topk}, " if metric.panel.topk else "("
        qs = QUANTILES if metric.panel.quantiles_by else (0.99,)
        label = lambda q: f"p{round(q * 100)} " if len(qs) > 1 else ""  # noqa: E731
        panels.append(timeseries(f"{name}: {', '.join(f'p{round(q * 100)}' for q in qs)} by {', '.join(by)}",
                                 metric.help, [target(f"{top}{quantile_expr(metric, q, by)})", label(q) + legend(by),
                                                      chr(65 + i)) for i, q in enumerate(qs)], unit))
        panels.append(timeseries(f"{name}: events per second by {', '.join(by)}", metric.help,
                                 [target(rate_expr(metric, by, f"{metric.name}_count"), legend(by))], "ops"))
    return panels


def for_metric(metric: Metric) -> list[g.Panel]:
    if metric.panel.hide:
        return []
    return {"counter": counter, "gauge": gauge, "histogram": histogram}[metric.type](metric)


def text(title: str, content: str) -> g.Text:
    return g.Text(title=title, content=content, mode="markdown")


def layout(rows: list[tuple[str, list[g.Panel]]]) -> list[g.Panel]:
    """Rows of panels under their titles, two panels a row (a text panel takes a whole one): the gridPos
    of every panel."""
    out: list[g.Panel] = []
    y = 0
    for title, panels in rows:
        out.append(g.RowPanel(title=title, gridPos=g.GridPos(h=1, w=24, x=0, y=y)))
        y, col = y + 1, 0
        for panel in panels:
            full = isinstance(panel, g.Text)
            if full and col:  # finish the half-filled row first
                y, col = y + HEIGHT, 0
            height = 4 if full else HEIGHT
            panel.gridPos = g.GridPos(h=height, w=24 if full else WIDTH, x=col * WIDTH, y=y)
            col = 0 if full else col + 1
            if full or col == 2:
                y, col = y + height, 0
        if col:
            y += HEIGHT
        out += panels
    return out
