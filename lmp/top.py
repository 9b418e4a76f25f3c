"""`lmp top`: containers and services by what the collectors see, sorted and refreshed, like top(1).

It reads the exporters' own /metrics (no Prometheus needed): every metric with a cgroup label is a column,
its rate between two scrapes (a histogram's: the rate of its _sum, seconds or bytes per second), summed by
cgroup; lmp_cgroup_info names the rows. Each row says where to look next: the collector's dashboard for
that cgroup, and the command that records a scenario of one of its processes."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from prometheus_client.parser import text_string_to_metric_families

from exporters._lib.decoders import cgroup2_root
from exporters._lib.serving import Reach

if TYPE_CHECKING:
    from .config import Config

Key = tuple[str, str]  # (column: collector's metric, cgroup)


@dataclass
class Sample:
    at: float
    totals: dict[Key, float] = field(default_factory=dict)
    names: dict[str, dict[str, str]] = field(default_factory=dict)  # cgroup -> lmp_cgroup_info's labels
    collector: dict[str, str] = field(default_factory=dict)  # column -> the collector that exports it


def scrape(urls: dict[str, str], timeout: float = 10.0, reach: Reach = Reach()) -> Sample:
    """One scrape of each collector (name -> /metrics URL), as `reach` says (HTTPS and basic auth when
    `lmp run` has a web config); a collector that does not answer is left out."""
    sample = Sample(time.monotonic())
    for collector, url in urls.items():
        try:
            with reach.open(url, timeout) as response:
                text = response.read().decode()
        except OSError:
            continue
        for family in text_string_to_metric_families(text):
            if family.name == "lmp_cgroup_info":
                sample.names.update({s.labels["cgroup"]: s.labels for s in family.samples})
                continue
            for s in family.samples:
                counted = s.name.endswith("_total") or (family.type == "histogram" and s.name.endswith("_sum"))
                if "cgroup" not in s.labels or not counted:
                    continue
                column = s.name.removesuffix("_total")
                key = (column, s.labels["cgroup"])
                sample.totals[key] = sample.totals.get(key, 0.0) + s.value
                sample.collector[column] = collector
    return sample


@dataclass
class Row:
    cgroup: str
    name: str  # container name, else unit, else pod UID, else the path
    kind: str  # the runtime, "pod", "unit" or "cgroup"
    rates: dict[str, float]


def display(cgroup: str, labels: dict[str, str] | None) -> tuple[str, str]:
    labels = labels or {}
    if labels.get("runtime"):
        return labels.get("container_name") or labels["container_id"][:12], labels["runtime"]
    if labels.get("pod_uid"):
        return labels["pod_uid"], "pod"
    if labels.get("unit"):
        return labels["unit"], "unit"
    return cgroup, "cgroup"


def rows(before: Sample, after: Sample, sort: str | None = None) -> tuple[list[str], list[Row]]:
    """Columns and rows of rates between two samples, sorted by `sort` (a column; default the first),
    busiest first."""
    seconds = max(after.at - before.at, 1e-9)
    columns = sorted({column for column, _ in after.totals})
    by_cgroup: dict[str, dict[str, float]] = {}
    for (column, cgroup), total in after.totals.items():
        grew = max(total - before.totals.get((column, cgroup), 0.0), 0.0)  # a new series counts from 0
        by_cgroup.setdefault(cgroup, {})[column] = grew / seconds
    found = [Row(cg, *display(cg, after.names.get(cg)), rates) for cg, rates in by_cgroup.items()]
    key = sort if sort in columns else (columns[0] if columns else "")
    found.sort(key=lambda r: (r.rates.get(key, 0.0), sum(r.rates.values())), reverse=True)
    return columns, found


def first_pid(cgroup: str) -> int | None:
    """A process of the cgroup, for `lmp scenario attach`; None once it is empty or gone."""
    try:
        pids = (cgroup2_root() / cgroup.lstrip("/") / "cgroup.procs").read_text().split()
    except OSError:
        return None
    return int(pids[0]) if pids else None


def collector_of(row: Row, collector: dict[str, str]) -> str:
    """The collector of the row's busiest column ("" when it has none): the dashboard to look at next."""
    busiest = max(row.rates, key=lambda c: row.rates[c]) if row.rates else ""
    return collector.get(busiest, "")


def look_next(row: Row, collector: dict[str, str]) -> str:
    """Where to look next for a row, as the admin's Containers page links it: the collector's dashboard for
    that cgroup (Grafana's, and the admin's page of that collector), and the command that records a scenario
    of one of its processes."""
    name, cgroup = collector_of(row, collector), quote(row.cgroup, safe="/")
    text = f"{row.name}: dashboard /d/lmp-{name or 'overview'}?var-cgroup={cgroup}"
    if name:
        text += f" (admin: /components/{name}?cgroup={cgroup})"
    pid = first_pid(row.cgroup)
    return text + (f"; record a scenario: lmp scenario attach --pid {pid} --duration 10" if pid else "")


def short(column: str) -> str:
    return column.removeprefix("lmp_").removesuffix("_sum")


def render(columns: list[str], found: list[Row], collector: dict[str, str], limit: int = 20) -> str:
    """The table (rates per second) and, under it, where to look next for the top rows."""
    head = f"{'NAME':<32} {'KIND':<10} " + " ".join(f"{short(c)[:18]:>18}" for c in columns)
    lines = [head]
    for row in found[:limit]:
        lines.append(f"{row.name[:32]:<32} {row.kind:<10} "
                     + " ".join(f"{row.rates.get(c, 0.0):>18.2f}" for c in columns))
    lines.append("")
    lines += [look_next(row, collector) for row in found[:3]]
    return "\n".join(lines) + "\n"


def run(urls: dict[str, str], interval: float, sort: str | None, once: bool, reach: Reach = Reach()) -> int:
    before = scrape(urls, reach=reach)
    while True:
        time.sleep(interval)
        after = scrape(urls, reach=reach)
        columns, found = rows(before, after, sort)
        text = render(columns, found, after.collector)
        sys.stdout.write(text if once else "\033[H\033[2J" + time.strftime("lmp top  %H:%M:%S\n\n") + text)
        sys.stdout.flush()
        if once:
            return 0
        before = after


def urls_from_config(path: Path | None) -> tuple[dict[str, str], Reach]:
    """The enabled collectors' /metrics, and how to reach them (as the running `lmp run` set them up)."""
    from . import config as configs
    cfg = configs.load(path)
    reach = Reach.of_run_dir(Path(cfg.admin.run_dir))
    return urls_from_config_object(cfg, reach), reach


def urls_from_config_object(cfg: Config, reach: Reach = Reach()) -> dict[str, str]:
    """The /metrics of every enabled collector."""
    return {c.name: reach.url(c.listen) for c in cfg.collectors.values() if c.enabled and c.listen}
