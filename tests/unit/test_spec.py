"""Specs: every shipped spec loads; a bad one is refused with its file, line and reason."""
from __future__ import annotations

from pathlib import Path

import pytest

from exporters._lib import btf, catalog, libbpf
from exporters._lib import spec as specs
from exporters._lib.yamlfile import YamlError

GOOD = """name: demo
summary: A demo.
answers: what a demo shows
port: 9999
enabled: false
requires:
  tracepoints: [sched:sched_switch]
options:
  verbose: {type: bool, default: false, help: More.}
metrics:
  - name: lmp_demo_latency_seconds
    type: histogram
    help: Demo latency.
    when: verbose
    labels:
      - {name: op, decoder: enum, values: [read, write]}
    histogram: {kernel_unit: nanoseconds, min_slot: 10, max_slot: 20}
"""


def write(tmp_path: Path, text: str, name: str = "demo") -> Path:
    (tmp_path / name).mkdir()
    path = tmp_path / name / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", catalog.names())
def test_every_shipped_spec_loads_and_has_its_files(name):
    spec = catalog.load(name)
    assert spec.source.is_file() and spec.readme.is_file()
    assert spec.hooks
    obj = libbpf.open_file(spec.object)  # what the kernel code declares, as built
    try:
        types = btf.Types(libbpf.btf(obj))
        maps = {libbpf.name(m, True): libbpf.map_info(m) for m in libbpf.maps(obj)}
        for metric in spec.metrics:  # each metric's map is in the object, or it comes from /proc
            if metric.procfs is not None:
                assert (Path("/proc") / metric.procfs.file).is_file()
                continue
            assert metric.map in maps, metric.name
            if metric.value:  # a shared map: its value struct has the field the metric reads
                assert metric.value in types.layout(maps[metric.map][6]).fields, metric.name
        for internal in spec.internal_maps:
            assert internal.name in maps
    finally:
        libbpf.close(obj)


def test_each_collector_has_a_port_of_its_own():
    ports = {name: catalog.load(name).port for name in catalog.names()}
    assert len(set(ports.values())) == len(ports), ports
    assert not {9480, 9490} & set(ports.values())  # the admin's and Prometheus' defaults


@pytest.mark.parametrize("name", catalog.names())
def test_readme_table_lists_every_collector(name):
    readme = (catalog.EXPORTERS_DIR.parent / "README.md").read_text()
    assert f"| [{name}](exporters/{name}/README.md) |" in readme


def test_good_spec_loads(tmp_path):
    spec = specs.load(write(tmp_path, GOOD))
    metric = spec.metrics[0]
    assert metric.map == "demo_latency_seconds"
    assert metric.labels[0].values == ("read", "write")
    assert spec.active({"verbose": False})[0] == [] and spec.active({"verbose": True})[0] == [metric]


@pytest.mark.parametrize("old, new, line, reason", [
    ("type: histogram", "type: histo", 12, "'histo' is not one of"),
    ("when: verbose", "when: quiet", 14, "`when: quiet` names no option"),
    ("lmp_demo_latency_seconds", "lmp_demo_latency_ms", 11, "ending in _seconds"),
    ("min_slot: 10", "min_slot: 30", 17, "min_slot is above max_slot"),
    ("values: [read, write]", "values: []", 16, "should be non-empty"),
    ("default: false", "default: 3", 9, "default 3 is not a bool"),
    ("  tracepoints: [sched:sched_switch]", "  tracepoints: [sched_switch]", 7, "does not match"),
    ("name: demo", "name: other", 1, "must match its folder"),
    ("help: Demo latency.", "help: [unclosed", 14, "invalid YAML"),
])
def test_bad_spec_names_line_and_reason(tmp_path, old, new, line, reason):
    assert old in GOOD
    with pytest.raises(YamlError) as err:
        specs.load(write(tmp_path, GOOD.replace(old, new, 1)))
    assert err.value.line == line, str(err.value)
    assert reason in err.value.reason
    assert str(err.value).startswith(f"{tmp_path}/demo/demo.yaml:{line}: ")


@pytest.mark.parametrize("extra, reason", [
    # OpenMetrics would name this counter's family lmp_demo_latency_seconds too.
    ("  - {name: lmp_demo_latency_seconds_total, type: counter, help: h}\n", "family name lmp_demo_latency_seconds"),
    ("  - {name: lmp_demo_other_total, type: counter, help: h, map: demo_latency_seconds}\n",
     "map demo_latency_seconds already feeds another metric"),
    ("internal_maps:\n  - {name: demo_latency_seconds, help: h}\n", "has the name of another map"),
])
def test_names_and_maps_do_not_collide(tmp_path, extra, reason):
    with pytest.raises(YamlError, match=reason):
        specs.load(write(tmp_path, GOOD + extra))


def test_an_option_puts_a_map_in_another_s_place(tmp_path):
    text = GOOD.replace("    when: verbose\n", "").replace("help: More.}", "help: More., maps: {demo_latency_seconds: demo_by_op}}")
    spec = specs.load(write(tmp_path, text))
    assert "demo_by_op" in spec.map_names  # so that it is sized down to one entry while the option is off
    assert spec.active({"verbose": True})[1] == ["demo_by_op"]
    assert [m.map for m in spec.active({"verbose": False})[0]] == ["demo_latency_seconds"]


@pytest.mark.parametrize("option, reason", [
    ("verbose: {type: int, default: 1, help: More., maps: {demo_latency_seconds: x}}", "only a bool option"),
    ("verbose: {type: bool, default: false, help: More., maps: {nothing_reads_it: x}}",
     "replaces maps no metric reads: nothing_reads_it"),
    ("verbose: {type: bool, default: false, help: More., maps: {demo_latency_seconds: demo_latency_seconds}}",
     "already has a metric or internal map of its own"),
])
def test_a_map_in_another_s_place_is_checked(tmp_path, option, reason):
    with pytest.raises(YamlError, match=reason):
        specs.load(write(tmp_path, GOOD.replace("verbose: {type: bool, default: false, help: More.}", option)))


ALERT = """alerts:
  - name: LmpDemoSlow
    expr: histogram_quantile(0.99, rate(lmp_demo_latency_seconds_bucket{$selector}[5m])) > $demo_seconds
    severity: warning
    summary: Slow.
    description: Slow demo.
    thresholds: {demo_seconds: 1}
    runbook: Look at the demo.
    tests: [{name: a demo test}]
"""


@pytest.mark.parametrize("extra, reason", [
    ("    dashboard: {by: [disk]}\n", "dashboard.by names labels the metric does not have: disk"),
    ("  - name: lmp_demo_segments_total\n    type: counter\n    help: h\n    labels: [{name: op, decoder: int}]\n"
     "    procfs: {file: net/snmp, row: Tcp, column: OutSegs}\n", "a procfs metric is one counter or gauge"),
    (ALERT.replace("lmp_demo_latency_seconds_bucket", "lmp_other_seconds_bucket"),
     "uses metrics this collector does not export: lmp_other_seconds"),
    (ALERT + ALERT.removeprefix("alerts:\n"), "alert LmpDemoSlow is defined twice"),
    (ALERT.replace("LmpDemoSlow", "DemoSlow"), "does not match"),
])
def test_dashboard_hints_procfs_and_alerts_are_checked(tmp_path, extra, reason):
    with pytest.raises(YamlError, match=reason):
        specs.load(write(tmp_path, GOOD + extra))


def test_an_alert_loads_with_its_text_on_one_line(tmp_path):
    spec = specs.load(write(tmp_path, GOOD + ALERT))
    assert spec.alerts[0].name == "LmpDemoSlow" and spec.alerts[0].for_ == "0m"
    assert spec.metrics[0].unit == "seconds"


def test_options_from_the_command_line():
    spec = catalog.load("syscalls")
    assert specs.parse_option(spec, "latency=yes") == ("latency", True)
    assert specs.parse_option(spec, "filter_tgid=42") == ("filter_tgid", 42)
    with pytest.raises(ValueError, match="takes a int"):
        specs.parse_option(spec, "filter_tgid=many")
    with pytest.raises(ValueError, match="unknown option"):
        specs.parse_option(spec, "latency")
