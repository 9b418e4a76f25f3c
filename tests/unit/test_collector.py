"""From in-kernel log2 slots to Prometheus buckets, and the exposition's escaping."""
from __future__ import annotations

import pytest

from exporters._lib import collector, exposition, libbpf
from exporters._lib.bpf import Map
from exporters._lib.btf import Field, Layout
from exporters._lib.collector import MapMetric, histogram_buckets
from exporters._lib.serving import parse_listen, scrape_url
from exporters._lib.spec import Histogram, Label, Metric


def kernel_slot(value: int) -> int:
    """lmp.h's lmp_hist_observe slot, in Python: bpf_log2l(x) is floor(log2(x)) + 1 for x >= 1."""
    log2l = lambda x: x.bit_length()  # noqa: E731  (floor(log2(x)) + 1; 0 for 0)
    return min(log2l(value - 1) if value > 1 else 0, 39)


@pytest.mark.parametrize("value", [0, 1, 2, 3, 4, 5, 1023, 1024, 1025, 4096, 10**6, 2**34, 2**34 + 1, 2**45])
def test_each_value_is_in_every_bucket_whose_bound_is_at_least_it(value):
    slots = [0] * 40
    slots[kernel_slot(value)] = 1
    for le, count in histogram_buckets(slots, Histogram("bytes", min_slot=0, max_slot=34)):
        assert count == (1 if le == "+Inf" or value <= float(le) else 0), (value, le)


def test_buckets_are_cumulative_in_base_units():
    slots = [0] * 40
    slots[0], slots[5], slots[11], slots[12], slots[39] = 1, 2, 3, 4, 5  # 39: beyond max_slot
    buckets = histogram_buckets(slots, Histogram("nanoseconds", min_slot=10, max_slot=12))
    assert buckets == [("1.024e-06", 3), ("2.048e-06", 6), ("4.096e-06", 10), ("+Inf", 15)]


def test_escaping_and_openmetrics_family_names():
    assert exposition.labels(["path", "comm"], ('/a"b\\c', "x\ny")) == r'path="/a\"b\\c",comm="x\ny"'
    assert exposition.braces("") == "" and exposition.braces('a="1"') == '{a="1"}'
    assert exposition.header("lmp_x_total", "counter", "Line\none", openmetrics=True) == \
        "# HELP lmp_x Line\\none\n# TYPE lmp_x counter\n"
    assert exposition.header("lmp_x_total", "counter", "h", openmetrics=False).startswith("# HELP lmp_x_total h\n")


@pytest.mark.parametrize("text, expected, url", [
    ("127.0.0.1:9451", ("127.0.0.1", 9451), "http://127.0.0.1:9451/metrics"),
    (":9451", ("0.0.0.0", 9451), "http://127.0.0.1:9451/metrics"),
    ("[::1]:80", ("::1", 80), "http://[::1]:80/metrics"),
])
def test_listen_addresses(text, expected, url):
    assert parse_listen(text) == expected
    assert scrape_url(text) == url


@pytest.mark.parametrize("text", ["9451", "host:", "host:99999", "host:http", "host:0"])
def test_bad_listen_addresses(text):
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_listen(text)


class FakeMap(Map):
    """A BPF hash map as MapMetric reads it (items, deletion, a capacity) with a dict for the kernel's copy;
    keys and values are the bytes the kernel's would be."""

    def __init__(self, key: Layout) -> None:
        super().__init__("demo_total", -1, libbpf.MAP_HASH, key, Layout("", 8, {"": Field("", 0, 8, "uint")}),
                         key.size, 8, 16, 1)
        self.entries: dict[bytes, bytes] = {}

    def items(self) -> list[tuple[bytes, memoryview]]:
        return [(k, memoryview(v)) for k, v in self.entries.items()]

    def delete(self, key: bytes) -> bool:
        return self.entries.pop(key, None) is not None


CGROUP_CODE = Layout("key", 16, {"cgroup": Field("cgroup", 0, 8, "uint"), "code": Field("code", 8, 4, "uint")})
CGROUP = Layout("u64", 8, {"": Field("", 0, 8, "uint")})


def test_a_removed_cgroups_counts_are_retired_then_expire(monkeypatch):
    metric = Metric("lmp_demo_total", "counter", "h", "demo_total",
                    labels=(Label("cgroup", "cgroup", "cgroup"), Label("code", "code", "int")))
    table = FakeMap(CGROUP_CODE)
    gone = CGROUP_CODE.pack(cgroup=2**62, code=1)  # no cgroup has this id: it was removed
    table.entries[gone] = (5).to_bytes(8, "little")
    m = MapMetric(metric, table, {})
    now = [1000.0]
    monkeypatch.setattr(collector.time, "monotonic", lambda: now[0])
    line = f'lmp_demo_total{{cgroup="cgroup_{2**62}",code="1"}} 5'
    assert line in m.render(False, table.items()) and gone in table.entries  # first scrape: a suspect, still in the map
    now[0] += 2
    assert line in m.render(False, table.items()) and gone not in table.entries  # second: out of the kernel's map, still exported
    now[0] += collector.RETIRED_FOR
    assert line not in m.render(False, table.items())  # and gone after the grace period


def test_a_removed_cgroup_keyed_by_its_id_alone_is_retired_too(monkeypatch):
    metric = Metric("lmp_demo_execs_total", "counter", "h", "demo_total",
                    labels=(Label("cgroup", "cgroup", "cgroup"),))
    table = FakeMap(CGROUP)
    table.entries[CGROUP.pack(**{"": 2**62})] = (3).to_bytes(8, "little")
    m = MapMetric(metric, table, {})
    now = [1000.0]
    monkeypatch.setattr(collector.time, "monotonic", lambda: now[0])
    m.render(False, table.items())
    now[0] += 2
    assert f'lmp_demo_execs_total{{cgroup="cgroup_{2**62}"}} 3' in m.render(False, table.items())
    assert not table.entries


def test_per_cpu_values_are_added_up_and_a_field_is_read_where_the_spec_says():
    """A per-CPU value comes once per CPU, each padded to 8 bytes; a metric reading one field of a shared
    value struct (`value:`) gets that field's words, summed."""
    value = Layout("stats", 16, {"calls": Field("calls", 0, 8, "uint"), "bytes": Field("bytes", 8, 8, "uint")})
    per_cpu = Map("file_io", -1, libbpf.MAP_PERCPU_HASH, CGROUP, value, 8, 16, 4, cpus=3)
    raw = memoryview(b"".join((n).to_bytes(8, "little") for n in (1, 10, 2, 20, 3, 30)))
    assert per_cpu.words(raw, 0, 1) == [6] and per_cpu.words(raw, 1, 1) == [60]
    assert per_cpu.words(raw, 0, 2) == [6, 60]
