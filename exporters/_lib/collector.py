"""The scrape-time collector: reads a collector's BPF maps and yields Prometheus metric families.

Follows client_python's custom-collector idiom (see prometheus_client/process_collector.py): nothing is
counted in user space; every scrape reads the kernel's maps and builds fresh families."""
from __future__ import annotations

import ctypes
import logging
import platform
import time
from collections.abc import Iterator
from typing import Any, Callable

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
                                    Metric as Family)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import decoders
from .bpf import Loaded
from .spec import Histogram, Metric, Spec

log = logging.getLogger("lmp.exporter")
VERSION = "0.1.0"
HASH_TYPES = {1, 5, 9}  # BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH: the maps that can fill up


def read_map(table: Any) -> list[tuple[Any, Any]]:
    """All (key, value) pairs, with one batch syscall where the kernel allows (10x faster than
    per-key iteration on a 10k-entry hash), else key by key."""
    try:
        return list(table.items_lookup_batch())
    except Exception:  # kernels before 5.6, or map types without batch ops
        return list(table.items())


def per_cpu(table: Any, value: Any) -> list[Any]:
    """A per-CPU map's value holds one element per CPU; any other map's value is the one element."""
    return list(value) if hasattr(table, "total_cpu") else [value]


def _int(x: Any) -> int:
    return int(getattr(x, "value", x))


def _key_reader(metric: Metric) -> Callable[[Any], tuple[str, ...]]:
    """Key -> label values. A struct key is read by field; a scalar key is the one label's value."""
    fields = [(label.field, decoders.make(label.decoder, label.values)) for label in metric.labels]

    def read(key: Any) -> tuple[str, ...]:
        if not fields:
            return ()
        if isinstance(key, ctypes.Structure):
            return tuple(decode(getattr(key, name)) for name, decode in fields)
        return (fields[0][1](getattr(key, "value", key)),)
    return read


def histogram_buckets(slots: list[int], hist: Histogram) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets from log2 slots: slot k's upper bound is 2^k kernel units."""
    buckets, running = [], sum(slots[: hist.min_slot])
    for k in range(hist.min_slot, hist.max_slot + 1):
        running += slots[k]
        buckets.append((floatToGoString((1 << k) * hist.scale), running))
    buckets.append(("+Inf", sum(slots)))
    return buckets


class BpfCollector(Collector):
    """Yields one family per metric in the spec (those the chosen options turn on), then self metrics."""

    def __init__(self, spec: Spec, loaded: Loaded, values: dict[str, bool | int]) -> None:
        self.spec, self.loaded = spec, loaded
        self.metrics, _ = spec.active(values)
        self.tables = {m.map: loaded.bpf.get_table(m.map) for m in self.metrics}
        self.key_readers = {m.name: _key_reader(m) for m in self.metrics}
        self.overflow = loaded.bpf.get_table("lmp_overflow")
        self.build = {"version": VERSION, "kernel": platform.release(), "bcc_version": _bcc_version()}

    def collect(self) -> Iterator[Family]:
        started, ok = time.perf_counter(), 1
        entries: dict[str, int] = {}
        for metric in self.metrics:
            try:
                items = read_map(self.tables[metric.map])
                entries[metric.map] = len(items)
                yield self._family(metric, items)
            except Exception:  # one broken map must not hide the others
                log.exception("%s: reading map %s failed", self.spec.name, metric.map)
                ok = 0
        yield from self._self_metrics(entries)
        duration = GaugeMetricFamily("lmp_exporter_scrape_duration_seconds",
                                     "Time this scrape took to read the BPF maps.", labels=["collector"])
        duration.add_metric([self.spec.name], time.perf_counter() - started)
        success = GaugeMetricFamily("lmp_exporter_scrape_success",
                                    "1 if every map of the collector was read in this scrape.", labels=["collector"])
        success.add_metric([self.spec.name], ok)
        yield duration
        yield success

    def _family(self, metric: Metric, items: list[tuple[Any, Any]]) -> Family:
        table, read_key = self.tables[metric.map], self.key_readers[metric.name]
        names = [label.name for label in metric.labels]
        if metric.histogram is not None:
            hists: dict[tuple[str, ...], tuple[list[int], int]] = {}
            for key, value in items:
                for h in per_cpu(table, value):
                    if not h.sum and not any(h.slots):
                        continue
                    labels = read_key(key)
                    slots, total = hists.get(labels, ([0] * len(h.slots), 0))
                    hists[labels] = ([a + b for a, b in zip(slots, h.slots)], total + h.sum)
            family: Family = HistogramMetricFamily(metric.name, metric.help, labels=names)
            for labels, (slots, total) in hists.items():
                family.add_metric(list(labels), histogram_buckets(slots, metric.histogram),
                                  sum_value=total * metric.histogram.scale)
            return family
        counts: dict[tuple[str, ...], int] = {}
        for key, value in items:
            n = sum(_int(x) for x in per_cpu(table, value))
            if n:
                labels = read_key(key)
                counts[labels] = counts.get(labels, 0) + n
        cls = CounterMetricFamily if metric.type == "counter" else GaugeMetricFamily
        family = cls(metric.name, metric.help, labels=names)
        for labels, n in counts.items():
            family.add_metric(list(labels), n)
        return family

    def _self_metrics(self, entries: dict[str, int]) -> Iterator[Family]:
        name = self.spec.name
        attached = GaugeMetricFamily("lmp_exporter_program_attached",
                                     "1 if the collector's program is attached to this hook.",
                                     labels=["collector", "hook"])
        for hook, ok in self.loaded.attached().items():
            attached.add_metric([name, hook], int(ok))
        yield attached
        overflow = CounterMetricFamily("lmp_exporter_map_overflow_total",
                                       "Events dropped because a fixed-size BPF map was full.",
                                       labels=["collector", "map"])
        for index, (_, value) in enumerate(read_map(self.overflow)):
            if index < len(self.loaded.maps):
                overflow.add_metric([name, self.loaded.maps[index]], sum(_int(x) for x in value))
        yield overflow
        used = GaugeMetricFamily("lmp_exporter_map_entries", "Entries in a BPF hash map at this scrape.",
                                 labels=["collector", "map"])
        capacity = GaugeMetricFamily("lmp_exporter_map_capacity", "Entries a BPF hash map can hold.",
                                     labels=["collector", "map"])
        for map_name, count in entries.items():
            table = self.tables[map_name]
            if table.ttype in HASH_TYPES:
                used.add_metric([name, map_name], count)
                capacity.add_metric([name, map_name], table.max_entries)
        yield used
        yield capacity
        info = GaugeMetricFamily("lmp_exporter_build_info", "Versions this exporter runs with; always 1.",
                                 labels=["collector", *self.build])
        info.add_metric([name, *self.build.values()], 1)
        yield info


def _bcc_version() -> str:
    try:
        import bcc.version
        return str(bcc.version.__version__)
    except ImportError:
        return "unknown"
