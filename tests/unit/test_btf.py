"""Layouts read from a compiled object's BTF: where the exporter finds each label, value, option and
overflow counter, from the kernel code alone."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from exporters._lib import btf, catalog, libbpf


@pytest.fixture
def types() -> Iterator:
    """Types of a collector's object, opened (not loaded: no privilege needed)."""
    opened: list[int] = []

    def open_object(name: str) -> btf.Types:
        obj = libbpf.open_file(catalog.load(name).object)
        opened.append(obj)
        return btf.Types(libbpf.btf(obj))

    yield open_object
    for obj in opened:
        libbpf.close(obj)


def test_a_struct_key_is_read_field_by_field(types):
    key = types("syscalls").struct("error_key")
    assert key.size == 16
    assert [(f.name, f.offset, f.size, f.kind) for f in key.fields.values()] == [
        ("cgroup", 0, 8, "uint"), ("syscall", 8, 4, "uint"), ("errno", 12, 4, "uint")]
    raw = key.pack(syscall=257, errno=2)
    assert raw == bytes(8) + (257).to_bytes(4, "little") + (2).to_bytes(4, "little")
    assert (key.get(raw, "syscall"), key.get(raw, "errno")) == (257, 2)


def test_a_histogram_is_its_slots_then_its_sum(types):
    hist = types("runqlat").struct("lmp_hist")
    slots, total = hist.fields["slots"], hist.fields["sum"]
    assert (slots.kind, slots.count, slots.offset, total.offset, hist.size) == ("array", 40, 0, 320, 328)


def test_one_value_struct_feeds_several_metrics(types):
    """biolatency's (disk, op) statistics: the latency histogram and three counters, each found by the
    name the spec's `value:` gives it."""
    stats = types("biolatency").struct("io_stats")
    assert [(f.name, f.offset, f.size) for f in stats.fields.values()] == [
        ("latency", 0, 328), ("requests", 328, 8), ("bytes", 336, 8), ("errors", 344, 8)]
    spec = catalog.load("biolatency")
    assert {m.value for m in spec.metrics} == set(stats.fields)


def test_padding_is_zero_so_that_equal_keys_hash_equally(types):
    key = types("pagefault").struct("fault_key")
    assert key.size == 16 and key.pack(cgroup=7, mode=1, access=2, cause=1)[11:] == bytes(5)


def test_options_are_read_only_globals_and_overflow_counters_bss_globals(types):
    t = types("syscalls")
    options = t.section(".rodata")
    assert {name: (f.size, f.kind) for name, f in options.items()} == {"latency": (1, "uint"),
                                                                        "filter_tgid": (4, "uint"), "cgroup": (1, "uint")}
    assert set(t.section(".bss")) == {"lmp_overflow_syscalls_total", "lmp_overflow_syscall_errors_total",
                                      "lmp_overflow_syscalls_total_by_cgroup"}


def test_a_signed_option_keeps_its_sign(types):
    option = types("tcp").section(".rodata")["filter_port"]
    assert option.kind == "uint"
    field = btf.Field("syscall_nr", 0, 4, "int")
    buf = bytearray(4)
    field.put(buf, -1)
    assert field.get(bytes(buf)) == -1
