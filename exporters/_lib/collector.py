"""The scrape-time collector: reads a collector's BPF maps and renders them as metrics.

Nothing is counted in user space: every scrape reads the kernel's maps. The spec's metrics are rendered by
exposition.py (fast, cached label sets); the exporter's own metrics (lmp_exporter_*) are a client_python
custom collector, the idiom of prometheus_client/process_collector.py."""
from __future__ import annotations

import importlib.metadata
import logging
import platform
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric as Family
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import decoders, exposition
from .bpf import Loaded
from .spec import Histogram, Metric, Spec, load_self

log = logging.getLogger("lmp.exporter")
HASH_TYPES = {1, 5, 9, 10}  # BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH: maps that fill up


def read_map(table: Any) -> list[tuple[Any, Any]]:
    """All (key, value) pairs, with one batch syscall where the kernel allows (10x faster than
    per-key iteration on a 10k-entry hash), else key by key."""
    try:
        return list(table.items_lookup_batch())
    except Exception:  # kernels before 5.6, or map types without batch ops
        return list(table.items())


def total(value: Any) -> int:
    """A counter's value: batch reads give ints (per-CPU maps: an array of them), key-by-key reads
    give ctypes numbers."""
    if isinstance(value, int):
        return value
    if hasattr(value, "value"):
        return value.value
    return sum(value)


def hist_sum(value: Any) -> tuple[list[int], int]:
    """Slots and sum of a histogram value, added up over CPUs for per-CPU maps."""
    per_cpu = list(value) if hasattr(value, "__len__") else [value]
    slots = [sum(column) for column in zip(*(h.slots for h in per_cpu))]
    return slots, sum(h.sum for h in per_cpu)


def key_field(key: Any, field: str) -> int:
    """A struct key's field, or a scalar key itself (a map keyed by one number has one label)."""
    return getattr(key, field) if hasattr(key, "_fields_") else int(getattr(key, "value", key))


def _key_decoder(metric: Metric) -> Callable[[Any], tuple[str, ...]]:
    """Key -> label values. A struct key is read by field; a scalar key is the one label's value."""
    fields = [(label.field, decoders.make(label.decoder, label.values, label.event, label.field))
              for label in metric.labels]

    def decode(key: Any) -> tuple[str, ...]:
        if not fields:
            return ()
        if hasattr(key, "_fields_"):
            return tuple(fn(getattr(key, name)) for name, fn in fields)
        return (fields[0][1](getattr(key, "value", key)),)
    return decode


def histogram_buckets(slots: list[int], hist: Histogram) -> list[tuple[str, int]]:
    """Cumulative Prometheus buckets from log2 slots: slot k's upper bound is 2^k kernel units."""
    buckets, running = [], sum(slots[: hist.min_slot])
    for k in range(hist.min_slot, hist.max_slot + 1):
        running += slots[k]
        buckets.append((floatToGoString((1 << k) * hist.scale), running))
    buckets.append(("+Inf", sum(slots)))
    return buckets


RETIRED_FOR = 300.0  # seconds a removed cgroup's series stay exported: alert and rate windows see them


class MapMetric:
    """One spec metric bound to its BPF map, with the label sets of keys seen so far cached.

    Keys of removed cgroups are deleted from the kernel's map (so that churning containers cannot fill it
    for good), but their last values live on here, `retired`, for RETIRED_FOR seconds: an OOM kill in a
    container that is then removed must stay visible longer than two scrapes."""

    def __init__(self, metric: Metric, table: Any) -> None:
        self.metric, self.table = metric, table
        self.names = [label.name for label in metric.labels]
        self.decode = _key_decoder(metric)
        self.label_cache: dict[Any, str] = {}
        self.cgroup_field = next((label.field for label in metric.labels if label.decoder == "cgroup"), None)
        self.suspects: set[int] = set()
        self.retired: dict[str, tuple[Any, float]] = {}  # label set -> (count or (slots, sum), until when)

    def _labels(self, key: Any) -> str:
        raw = key if isinstance(key, int) else bytes(key)
        inner = self.label_cache.get(raw)
        if inner is None:
            if len(self.label_cache) > 4 * self.table.max_entries:  # keys churn (cgroups come and go)
                self.label_cache.clear()
            inner = exposition.labels(self.names, self.decode(key))
            if self.cgroup_field is None or decoders.cgroups().known(key_field(key, self.cgroup_field)):
                self.label_cache[raw] = inner  # an unresolved cgroup may resolve at the next scrape
        return inner

    def _value(self, value: Any) -> Any:
        return total(value) if self.metric.histogram is None else hist_sum(value)

    def forget_dead_cgroups(self, items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        """Move the keys of cgroups that no longer exist out of the kernel's map into `retired`; returns the
        items still live. An id is dead when two scrapes in a row cannot find it (a cgroup created since the
        last walk is found by the next one)."""
        if self.cgroup_field is None:
            return items
        paths, now = decoders.cgroups(), time.monotonic()
        unknown = {key_field(key, self.cgroup_field) for key, _ in items} - {0}
        unknown = {cg for cg in unknown if not paths.known(cg)}
        dead, live = unknown & self.suspects, []
        for key, value in items:
            if key_field(key, self.cgroup_field) not in dead:
                live.append((key, value))
                continue
            inner, value = self._labels(key), self._value(value)
            old = self.retired.get(inner, (None, 0.0))[0]
            self.retired[inner] = (add(old, value), now + RETIRED_FOR)
            try:  # batch reads give a scalar key as an int, which BCC's delete wants as its ctypes Key
                del self.table[self.table.Key(key) if isinstance(key, int) else key]
            except KeyError:
                pass
        self.suspects = unknown
        self.retired = {k: v for k, v in self.retired.items() if v[1] > now}
        return live

    def render(self, openmetrics: bool) -> str:
        m = self.metric
        items = self.forget_dead_cgroups(read_map(self.table))
        values: dict[str, Any] = {inner: value for inner, (value, _) in self.retired.items()}
        for key, value in items:
            value = self._value(value)
            seen = value if m.histogram is None else value[1] or any(value[0])  # a zero stays unexported
            if seen:
                inner = self._labels(key)
                values[inner] = add(values.get(inner), value)
        out = [exposition.header(m.name, m.type, m.help, openmetrics)]
        if m.histogram is None:
            out += [f"{m.name}{exposition.braces(inner)} {n}\n" for inner, n in values.items()]
            return "".join(out)
        for inner, (slots, value_sum) in values.items():
            sep = "," if inner else ""
            buckets = histogram_buckets(slots, m.histogram)
            out += [f'{m.name}_bucket{{{inner}{sep}le="{le}"}} {count}\n' for le, count in buckets]
            out.append(f"{m.name}_count{exposition.braces(inner)} {buckets[-1][1]}\n")
            out.append(f"{m.name}_sum{exposition.braces(inner)} "
                       f"{floatToGoString(value_sum * m.histogram.scale)}\n")
        return "".join(out)


def add(a: Any, b: Any) -> Any:
    """Two counts, or two histograms as (slots, sum); None is nothing yet."""
    if a is None:
        return b
    if isinstance(a, int):
        return a + b
    return [x + y for x, y in zip(a[0], b[0])], a[1] + b[1]


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
        self.maps: list[MapMetric | ProcfsMetric] = [
            MapMetric(m, loaded.bpf.get_table(m.map)) if m.procfs is None else ProcfsMetric(m) for m in metrics]
        self.tables = {name: loaded.bpf.get_table(name) for name in maps}
        self.lock = threading.Lock()  # scrapes may overlap; the label caches are shared
        self.last_duration, self.last_success = 0.0, 1
        self.entries: dict[str, int] = {}

    def render(self, openmetrics: bool) -> str:
        with self.lock:
            if self.loaded.closed:
                return ""
            started, ok, parts = time.perf_counter(), 1, []
            for m in self.maps:
                try:
                    parts.append(m.render(openmetrics))
                except Exception:  # one broken map must not hide the others
                    log.exception("%s: reading map %s failed", self.spec.name, m.metric.map)
                    ok = 0
            self.entries = {name: len(read_map(t)) for name, t in self.tables.items() if t.ttype in HASH_TYPES}
            self.last_duration, self.last_success = time.perf_counter() - started, ok
        return "".join(parts)

    def forget_labels(self) -> None:
        """Drop the cached label sets: a function component's new rules may name a key's values anew."""
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
        self.help = {m.name: m.help for m in load_self().metrics}  # one place for the texts: self.yaml
        self.overflow = bpf_collector.loaded.bpf.get_table("lmp_overflow")
        self.build = {"version": _version("lmp"), "kernel": platform.release(), "bcc_version": _bcc_version()}

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
        for index, (_, value) in enumerate(read_map(self.overflow)):
            if index < len(loaded.maps):
                overflow.add_metric([name, loaded.maps[index]], total(value))
        yield overflow
        entries = self.c.entries
        yield self._gauge("lmp_exporter_map_entries", [([name, map_name], n) for map_name, n in entries.items()], "map")
        yield self._gauge("lmp_exporter_map_capacity",
                          [([name, map_name], self.c.tables[map_name].max_entries) for map_name in entries], "map")
        yield self._gauge("lmp_exporter_build_info", [([name, *self.build.values()], 1)], *self.build)

    def _gauge(self, metric: str, samples: list[tuple[list[str], float]], *extra: str) -> GaugeMetricFamily:
        family = GaugeMetricFamily(metric, self.help[metric], labels=["collector", *extra])
        for label_values, value in samples:
            family.add_metric(label_values, value)
        return family


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _bcc_version() -> str:
    try:
        import bcc.version
        return str(bcc.version.__version__)
    except ImportError:
        return "unknown"
