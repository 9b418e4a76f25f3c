"""The scrape-time collector: reads a collector's BPF maps and renders them as metrics.

Nothing is counted in user space: every scrape reads the kernel's maps. The spec's metrics are rendered by
exposition.py (fast, cached label sets); the exporter's own metrics (lmp_exporter_*) are a client_python
custom collector, the idiom of prometheus_client/process_collector.py."""
from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import platform
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.core import Metric as Family
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import decoders, exposition, identity, libbpf
from .bpf import Loaded, Map
from .btf import Layout
from .budget import OTHER, Budget, Labels, Table, Values, add
from .spec import DEFAULT_SERIES_BUDGET, Histogram, Metric, Spec, load_self

log = logging.getLogger("lmp.exporter")


def _key_decoder(metric: Metric, key: Layout, interfaces: dict[int, str]) -> Callable[[bytes], tuple[str, ...]]:
    """Raw key bytes -> label values, each read from the key's field the label names (a key that is one
    number is the one label's value)."""
    fields = [(label.field, decoders.make(label.decoder, label.values, label.event, label.field, interfaces))
              for label in metric.labels]

    def decode(raw: bytes) -> tuple[str, ...]:
        return tuple(fn(key.get(raw, name)) for name, fn in fields)
    return decode


def histogram_buckets(slots: list[int], hist: Histogram) -> list[tuple[str, int]]:
    """Cumulative Prometheus buckets from log2 slots: slot k's upper bound is 2^k kernel units."""
    buckets, running = [], sum(slots[: hist.min_slot])
    for k in range(hist.min_slot, hist.max_slot + 1):
        running += slots[k]
        buckets.append((floatToGoString((1 << k) * hist.scale), running))
    buckets.append(("+Inf", sum(slots)))
    return buckets


RETIRED_FOR = 300.0  # seconds a removed cgroup's series stay exported (the forget_after option's default)
# Decoders of the labels that say who: above the budget they fold into `other`, and the keys of the dead
# (a removed cgroup, an exited process, a command name no task runs under any more) are forgotten.
FOLDS = ("cgroup", "pid", "comm")


class MapMetric:
    """One spec metric bound to its BPF map, with the label values of keys seen so far cached by the key's raw
    bytes.

    Keys of the dead, removed cgroups and command names no running task has, are deleted from the kernel's
    map (so that churning containers and processes cannot fill it for good), but their last values live on
    here, `retired`, for `retire_for` seconds: an OOM kill in a container that is then removed must stay
    visible longer than two scrapes."""

    def __init__(self, metric: Metric, bpf_map: Map, interfaces: dict[int, str],
                 retire_for: float = RETIRED_FOR) -> None:
        self.metric, self.map, self.retire_for = metric, bpf_map, retire_for
        self.names = [label.name for label in metric.labels]
        self.decode = _key_decoder(metric, bpf_map.key, interfaces)
        self.label_cache: dict[bytes, Labels] = {}
        self.inner_cache: dict[Labels, str] = {}
        self.cgroup_field = next((label.field for label in metric.labels if label.decoder == "cgroup"), None)
        self.mortal = [(label.decoder, label.field) for label in metric.labels if label.decoder in FOLDS]
        self.fold = tuple(i for i, label in enumerate(metric.labels) if label.decoder in FOLDS)
        self.cgroup = next((i for i, label in enumerate(metric.labels) if label.decoder == "cgroup"), None)
        self.suspects: set[tuple[str, Any]] = set()  # ("cgroup", id) or ("comm", name) the last pass missed
        self.retired: dict[Labels, tuple[Any, float]] = {}  # label values -> (count or (slots, sum), until when)
        self.last: Values = {}  # what the last read found
        # Where the metric's number lies in the map's value, in u64 words: the whole value, or the field
        # `value:` names; a histogram is its struct lmp_hist (slots, then sum).
        field = bpf_map.value.fields[metric.value] if metric.value else None
        self.start = field.offset // 8 if field else 0
        self.width = (field.size if field else bpf_map.value_size) // 8

    @property
    def weight(self) -> int:
        """Series one label set makes: a histogram's buckets (+Inf too), _count and _sum."""
        h = self.metric.histogram
        return 1 if h is None else h.max_slot - h.min_slot + 4

    def _cgroup(self, key: bytes) -> int:
        return self.map.key.get(key, self.cgroup_field)

    def _labels(self, key: bytes) -> Labels:
        labels = self.label_cache.get(key)
        if labels is None:
            if len(self.label_cache) > 4 * self.map.max_entries:  # keys churn (cgroups come and go)
                self.label_cache.clear()
            labels = self.decode(key)
            if self.cgroup_field is None or decoders.cgroups().known(self._cgroup(key)):
                self.label_cache[key] = labels  # an unresolved cgroup may resolve at the next scrape
        return labels

    def _inner(self, labels: Labels) -> str:
        inner = self.inner_cache.get(labels)
        if inner is None:
            if len(self.inner_cache) > 4 * self.map.max_entries:
                self.inner_cache.clear()
            inner = self.inner_cache[labels] = exposition.labels(self.names, labels)
        return inner

    def _value(self, value: memoryview) -> Any:
        words = self.map.words(value, self.start, self.width)
        return words[0] if self.metric.histogram is None else (words[:-1], words[-1])

    def _who(self, key: bytes) -> list[tuple[str, Any]]:
        """Those a key names that may die: its cgroup's id, its process id, its command name."""
        who: list[tuple[str, Any]] = []
        for kind, field in self.mortal:
            value = self.map.key.get(key, field)
            if kind == "comm":
                who.append((kind, decoders.comm(bytes(value))))
            elif value:  # cgroup 0: none (the option is off); pid 0: the idle task
                who.append((kind, int(value)))
        return who

    def forget_dead(self, items: list[tuple[bytes, Any]]) -> list[tuple[bytes, Any]]:
        """Move the keys of cgroups that no longer exist, of processes that exited and of command names no
        task runs under any more, out of the kernel's map into `retired`; returns the items still live. One
        is dead when two passes in a row cannot find it (a cgroup created since the last walk is found by
        the next one; a process may be between fork and exec)."""
        if not self.mortal:
            return items
        paths, now = decoders.cgroups(), time.monotonic()
        who = {key: self._who(key) for key, _ in items}
        named = {w for ws in who.values() for w in ws}
        running = decoders.running_comms() if any(kind == "comm" for kind, _ in named) else set()

        def alive(kind: str, value: Any) -> bool:
            if kind == "cgroup":
                return paths.known(value)
            return value in running if kind == "comm" else os.path.exists(f"/proc/{value}")
        unknown = {w for w in named if not alive(*w)}
        dead, live = unknown & self.suspects, []
        for key, value in items:
            if dead.isdisjoint(who[key]):
                live.append((key, value))
                continue
            labels, number = self._labels(key), self._value(value)
            old = self.retired.get(labels, (None, 0.0))[0]
            self.retired[labels] = (add(old, number), now + self.retire_for)
            self.map.delete(key)
            self.label_cache.pop(key, None)  # the memory of the dead goes with them
        self.suspects = unknown
        for labels in [k for k, v in self.retired.items() if v[1] <= now]:
            del self.retired[labels]
            self.inner_cache.pop(labels, None)
        return live

    def collect(self, items: list[tuple[bytes, memoryview]]) -> Values:
        """The metric's values by label values from `items`, the map's entries as one read found them."""
        items = self.forget_dead(items)
        values: Values = {labels: value for labels, (value, _) in self.retired.items()}
        for key, raw in items:
            value = self._value(raw)
            seen = value if self.metric.histogram is None else value[1] or any(value[0])  # a zero stays unexported
            if seen:
                labels = self._labels(key)
                values[labels] = add(values.get(labels), value)
        return values

    def text(self, openmetrics: bool, values: Values) -> str:
        m = self.metric
        out = [exposition.header(m.name, m.type, m.help, openmetrics)]
        if m.histogram is None:
            out += [f"{m.name}{exposition.braces(self._inner(labels))} {n}\n" for labels, n in values.items()]
            return "".join(out)
        for labels, (slots, value_sum) in values.items():
            inner = self._inner(labels)
            sep = "," if inner else ""
            buckets = histogram_buckets(slots, m.histogram)
            out += [f'{m.name}_bucket{{{inner}{sep}le="{le}"}} {count}\n' for le, count in buckets]
            out.append(f"{m.name}_count{exposition.braces(inner)} {buckets[-1][1]}\n")
            out.append(f"{m.name}_sum{exposition.braces(inner)} "
                       f"{floatToGoString(value_sum * m.histogram.scale)}\n")
        return "".join(out)

    def render(self, openmetrics: bool, items: list[tuple[bytes, memoryview]]) -> str:
        """The metric's lines from `items`, without a budget."""
        return self.text(openmetrics, self.collect(items))


class ProcfsMetric:
    """A counter the kernel already keeps in a /proc table, read at scrape time: the table is a header line
    of column names after a row prefix ("Tcp: ... OutSegs ...") and a line of values after the same prefix.
    Cheaper than a BPF program on every packet for a number the kernel counts anyway."""

    def __init__(self, metric: Metric) -> None:
        assert metric.procfs is not None
        self.metric, self.path = metric, Path("/proc") / metric.procfs.file

    def render(self, openmetrics: bool) -> str:
        m, source = self.metric, self.metric.procfs
        assert source is not None
        rows = [line.split()[1:] for line in self.path.read_text().splitlines() if line.startswith(source.row + ":")]
        names, values = rows[0], rows[1]  # ValueError/IndexError: the scrape reports the failure
        return exposition.header(m.name, m.type, m.help, openmetrics) + f"{m.name} {values[names.index(source.column)]}\n"


class BpfCollector:
    """Renders every metric of the spec that the chosen options turn on; remembers how the last
    scrape went, and how full each hash map was, for the self metrics."""

    def __init__(self, spec: Spec, loaded: Loaded, values: dict[str, bool | int]) -> None:
        self.spec, self.loaded = spec, loaded
        metrics, maps = spec.active(values)
        retire_for = float(values.get("forget_after", RETIRED_FOR))
        self.maps: list[MapMetric | ProcfsMetric] = [
            MapMetric(m, loaded.maps[m.map], loaded.interfaces, retire_for) if m.procfs is None else ProcfsMetric(m)
            for m in metrics]
        self.tables = {name: loaded.maps[name] for name in maps if name in loaded.maps}
        self.lock = threading.Lock()  # scrapes may overlap; the label caches are shared
        self.last_duration, self.last_success = 0.0, 1
        self.entries: dict[str, int] = {}
        self.budget = Budget(int(values.get("series_budget", DEFAULT_SERIES_BUDGET)),
                             float(values.get("min_cgroup_age", 0)), decoders.resolved)
        self.identities: dict[str, dict[str, str]] = {}  # cgroup path -> lmp_cgroup_info's labels
        self.info_help = load_self(check=False).metric("lmp_cgroup_info").help

    def render(self, openmetrics: bool) -> str:
        with self.lock:
            if self.loaded.closed:
                return ""
            started, ok = time.perf_counter(), 1
            read: dict[str, list[tuple[bytes, memoryview]]] = {}  # each map read once, whatever reads it
            collected: list[tuple[MapMetric, Values]] = []
            fixed = []
            for m in self.maps:
                try:
                    if isinstance(m, MapMetric):
                        m.last = m.collect(read.setdefault(m.map.name, m.map.items()))
                    else:
                        fixed.append(m.render(openmetrics))
                except Exception:  # one broken map must not hide the others
                    log.exception("%s: reading map %s failed", self.spec.name, m.metric.map)
                    ok = 0
                if isinstance(m, MapMetric):  # a failed read shows its last values: the budget's totals stay
                    collected.append((m, m.last))
            folded = self.budget.apply([Table(m.fold, m.cgroup, m.weight) for m, _ in collected],
                                       [v for _, v in collected])
            self.budget.series += len(fixed)
            parts = [m.text(openmetrics, values) for (m, _), values in zip(collected, folded)] + fixed
            parts.append(self._cgroup_info(openmetrics, collected, folded))
            self.entries = {name: len(read[name]) if name in read else len(t.items())
                            for name, t in self.tables.items() if t.type in libbpf.HASH_TYPES}
            self.last_duration, self.last_success = time.perf_counter() - started, ok
        return "".join(parts)

    def _cgroup_info(self, openmetrics: bool, collected: list[tuple[MapMetric, Values]], folded: list[Values]) -> str:
        """lmp_cgroup_info: one series for each cgroup this scrape exports, naming its container, pod or unit
        (exporters/_lib/identity.py), for joins on `cgroup`; `other` too, with empty labels, so that a join
        that keeps every cgroup (the dashboards' All) keeps it."""
        seen = {labels[m.cgroup] for (m, _), values in zip(collected, folded) if m.cgroup is not None
                for labels in values}
        if not seen:
            return ""
        if len(self.identities) > 4 * max(self.budget.limit, 1):  # cgroups churn
            self.identities.clear()
        out = [exposition.header("lmp_cgroup_info", "gauge", self.info_help, openmetrics)]
        for path in sorted(seen):
            labels = self.identities.get(path) if path != OTHER else identity.Identity().labels()
            if labels is None or (labels["runtime"] and not labels["container_name"]):  # a name may come later
                labels = self.identities[path] = identity.resolve(path).labels()
            inner = exposition.labels(["cgroup", *labels], (path, *labels.values()))
            out.append(f"lmp_cgroup_info{{{inner}}} 1\n")
        return "".join(out)

    def forget_labels(self) -> None:
        """Drop the cached label sets: a function component's new policy may name a key's values anew."""
        with self.lock:
            for m in self.maps:
                m.label_cache.clear()

    def close(self) -> None:
        """Detach and free the BPF programs and maps once no scrape is reading them."""
        with self.lock:
            self.loaded.close()


class SelfCollector(Collector):
    """lmp_exporter_*: scrape duration and success, programs attached, map fill and overflow, versions."""

    def __init__(self, bpf_collector: BpfCollector) -> None:
        self.c = bpf_collector
        self.help = {m.name: m.help for m in load_self(check=False).metrics}  # one place for the texts: self.yaml
        self.build = build_info()

    def collect(self) -> Iterator[Family]:
        name, loaded = self.c.spec.name, self.c.loaded
        if loaded.closed:
            return
        yield self._gauge("lmp_exporter_scrape_duration_seconds", [([name], self.c.last_duration)])
        yield self._gauge("lmp_exporter_scrape_success", [([name], self.c.last_success)])
        yield self._gauge("lmp_exporter_program_attached",
                          [([name, hook], int(ok)) for hook, ok in loaded.attached().items()], "hook")
        overflow = CounterMetricFamily("lmp_exporter_map_overflow_total", self.help["lmp_exporter_map_overflow_total"],
                                       labels=["collector", "map"])
        dropped = loaded.overflow()
        for map_name in self.c.tables:
            if map_name in dropped:
                overflow.add_metric([name, map_name], dropped[map_name])
        yield overflow
        entries = self.c.entries
        yield self._gauge("lmp_exporter_map_entries", [([name, map_name], n) for map_name, n in entries.items()], "map")
        yield self._gauge("lmp_exporter_map_capacity",
                          [([name, map_name], self.c.tables[map_name].max_entries) for map_name in entries], "map")
        budget = self.c.budget
        yield self._gauge("lmp_exporter_series", [([name], budget.series)])
        yield self._gauge("lmp_exporter_series_budget", [([name], budget.limit)])
        folded = CounterMetricFamily("lmp_exporter_folded_values_total",
                                     self.help["lmp_exporter_folded_values_total"], labels=["collector"])
        folded.add_metric([name], budget.folded_total)
        yield folded
        yield self._gauge("lmp_exporter_build_info", [([name, *self.build.values()], 1)], *self.build)

    def _gauge(self, metric: str, samples: list[tuple[list[str], float]], *extra: str) -> GaugeMetricFamily:
        family = GaugeMetricFamily(metric, self.help[metric], labels=["collector", *extra])
        for label_values, value in samples:
            family.add_metric(label_values, value)
        return family


@functools.cache
def build_info() -> dict[str, str]:
    """The versions lmp_exporter_build_info reports: found once (importlib.metadata reads every installed
    distribution's metadata), by the spawner before it forks the exporters."""
    try:
        version = importlib.metadata.version("lmp")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {"version": version, "kernel": platform.release(), "libbpf_version": libbpf.version()}
