"""A collector's spec (<name>.yaml): loaded, validated and turned into plain typed objects."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import paths, yamlfile
from .yamlfile import YamlError

SCHEMA = Path(__file__).with_name("spec.schema.json")
SELF = Path(__file__).with_name("self.yaml")
KERNEL_UNIT_SCALE = {"nanoseconds": 1e-9, "microseconds": 1e-6, "bytes": 1.0}
DEFAULT_SERIES_BUDGET = 10000  # series a collector exports before cgroups fold into `other`, unless its spec says
BASE_UNIT_SUFFIX = {"nanoseconds": "_seconds", "microseconds": "_seconds", "bytes": "_bytes"}


@dataclass(frozen=True)
class Label:
    name: str
    field: str  # the field of the BPF map key it is read from
    decoder: str
    values: tuple[str, ...] = ()  # decoder enum: the names of 0, 1, 2, ...
    event: str | None = None  # decoder symbolic: the tracepoint whose print format names the values
    when: str | None = None  # an option that must be on for the label to exist


@dataclass(frozen=True)
class Histogram:
    kernel_unit: str
    min_slot: int
    max_slot: int

    @property
    def scale(self) -> float:
        return KERNEL_UNIT_SCALE[self.kernel_unit]


@dataclass(frozen=True)
class Procfs:
    """A counter the kernel already keeps, read from a /proc table at scrape time instead of a map."""
    file: str  # under /proc: net/snmp, net/netstat
    row: str  # the table's row prefix: Tcp, TcpExt
    column: str  # OutSegs


@dataclass(frozen=True)
class Panel:
    """How the dashboard generator shows a metric (dashboard: in the spec); the defaults suit most."""
    by: tuple[str, ...] = ()  # labels the panel splits by
    topk: int | None = None  # show only the k largest series (for labels with many values)
    title: str | None = None
    hide: bool = False
    errors: str | None = None  # a counter's label matchers for its errors: an error-ratio panel (RED)
    quantiles_by: bool = False  # a histogram's p50, p90 and p99 by the `by` labels


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    help: str
    map: str
    labels: tuple[Label, ...] = ()
    histogram: Histogram | None = None
    when: str | None = None
    procfs: Procfs | None = None
    panel: Panel = Panel()
    value: str | None = None  # the field of the map's value it reads, where one map feeds several metrics

    @property
    def unit(self) -> str:
        """The base unit, from the name (Prometheus' naming rules): seconds, bytes, or none."""
        stem = self.name.removesuffix("_total")
        return next((u for u in ("seconds", "bytes", "ratio") if stem.endswith("_" + u)), "")


@dataclass(frozen=True)
class Alert:
    """An alert rule; `$name` in expr is one of its thresholds (config/alerts.yaml may override the value),
    `$selector` the label selector. Its runbook section and its promtool tests live with it."""
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    thresholds: tuple[tuple[str, float], ...] = ()
    runbook: str = ""
    tests: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Option:
    name: str
    type: str
    default: bool | int
    help: str
    programs: tuple[str, ...] = ()  # a bool option: programs that load only when it is on
    sizes: tuple[str, ...] = ()  # an int option: maps whose max_entries it is
    # a bool option: (map, the map its metric reads instead when the option is on), where the option needs a
    # key the cheaper map cannot have (syscalls: a per-CPU array by syscall, a hash by cgroup and syscall)
    maps: tuple[tuple[str, str], ...] = ()
    core: bool = False  # read by the exporter in user space (every collector has them), not by the kernel code
    minimum: int | None = None  # an int option's least value


def core_options(budget: int) -> dict[str, Option]:
    """The options every collector has: its series budget and how the series of cgroups and processes live
    and die."""
    return {o.name: o for o in (
        Option("series_budget", "int", budget, "Series the collector may export; above it the least active cgroups, "
               "processes and command names fold into cgroup=\"other\" (pid, comm), totals kept exact.", core=True, minimum=1),
        Option("min_cgroup_age", "int", 0, "Seconds a cgroup counts into cgroup=\"other\" after it is first seen, "
               "before it may have series of its own.", core=True, minimum=0),
        Option("forget_after", "int", 300, "Seconds the series of a removed cgroup, an exited process or a command "
               "name no task runs stay exported after their keys are deleted from the kernel's maps.", core=True, minimum=0),
    )}


@dataclass(frozen=True)
class BenchRun:
    """One of `lmp bench`'s runs of a collector: its loop, with these options, beside these peers."""
    loop: str
    operation: str
    operations: int
    options: tuple[tuple[str, bool | int], ...] = ()
    ebpf_exporter: str | None = None
    libbpf_tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class InternalMap:
    name: str
    help: str
    when: str | None = None
    per_process: bool = False  # keys start with a u32 tgid; entries of exited processes are deleted


@dataclass(frozen=True)
class Uprobes:
    """Uprobes on a shared library: attached to each file matching `library` that a process maps."""
    library: str  # a regular expression on the mapped file's name
    functions: dict[str, tuple[str, ...]]  # symbol -> programs (uretprobe sections attach at its return)


@dataclass
class Spec:
    name: str
    summary: str
    directory: Path
    answers: str = ""  # the question it answers, for the README's table
    port: int = 0  # /metrics on listen_address:port unless the config's entry says listen
    enabled: bool = True  # whether `lmp run` starts it when the config says nothing of it
    tracepoints: tuple[str, ...] = ()  # category:event, whichever way a program attaches (tp, raw_tp, tp_btf)
    options: dict[str, Option] = field(default_factory=dict)
    metrics: tuple[Metric, ...] = ()
    internal_maps: tuple[InternalMap, ...] = ()
    kind: str = "collector"
    alerts: tuple[Alert, ...] = ()
    # Function components: hook ("xdp", "cgroup/connect4") -> the C function loaded for it, attached through
    # a BPF link to each target the policy names; the policy's JSON schema; the ring buffer of its events.
    programs: dict[str, str] = field(default_factory=dict)
    policy: dict[str, Any] | None = None
    events: str | None = None
    bench: tuple[BenchRun, ...] = ()
    uprobes: Uprobes | None = None

    @property
    def hooks(self) -> list[str]:
        return [*self.tracepoints, *self.programs]

    @property
    def source(self) -> Path:
        return self.directory / f"{self.name}.bpf.c"

    @property
    def object(self) -> Path:
        """The compiled kernel code, built beside the source by `lmp build`."""
        return self.directory / f"{self.name}.bpf.o"

    def loop_source(self, run: BenchRun) -> Path | None:
        """The C loop `lmp bench` runs it on: its own, beside it, or one of bench/loops."""
        return next((p for p in (self.directory / f"{run.loop}.c", paths.BENCH_DIR / "loops" / f"{run.loop}.c")
                     if p.is_file()), None)

    @property
    def workload(self) -> Path:
        """workload.py beside it, if any: run(scratch) makes its dashboard's panels show data (what the
        real-Prometheus test runs, once per collector)."""
        return self.directory / "workload.py"

    @property
    def readme(self) -> Path:
        return self.directory / "README.md"

    @property
    def map_names(self) -> list[str]:
        """Every map the spec names: the metrics' (once each), then the internal ones."""
        maps = [m.map for m in self.metrics if m.procfs is None] + [m.name for m in self.internal_maps]
        maps += [instead for opt in self.options.values() for _, instead in opt.maps]
        return list(dict.fromkeys(maps))

    def active(self, values: dict[str, bool | int]) -> tuple[list[Metric], list[str]]:
        """The metrics (with their labels) and all map names (metrics' first) that exist with these
        option values."""
        on = lambda when: when is None or bool(values.get(when))  # noqa: E731
        swapped = {old: new for opt in self.options.values() if values.get(opt.name) for old, new in opt.maps}
        metrics = [replace(m, labels=tuple(l for l in m.labels if on(l.when)), map=swapped.get(m.map, m.map))
                   for m in self.metrics if on(m.when)]
        maps = [m.map for m in metrics if m.procfs is None] + [m.name for m in self.internal_maps if on(m.when)]
        return metrics, list(dict.fromkeys(maps))


def _metric(raw: dict[str, Any]) -> Metric:
    labels = tuple(
        Label(l["name"], l.get("field", l["name"]), l["decoder"], tuple(l.get("values", ())), l.get("event"),
              l.get("when"))
        for l in raw.get("labels", ())
    )
    hist, procfs, panel = raw.get("histogram"), raw.get("procfs"), raw.get("dashboard") or {}
    return Metric(
        name=raw["name"], type=raw["type"], help=raw["help"],
        map=raw.get("map", raw["name"].removeprefix("lmp_")), labels=labels,
        histogram=Histogram(**hist) if hist else None, when=raw.get("when"),
        procfs=Procfs(**procfs) if procfs else None,
        panel=Panel(tuple(panel.get("by", ())), panel.get("topk"), panel.get("title"), panel.get("hide", False),
                    panel.get("errors"), panel.get("quantiles_by", False)),
        value=raw.get("value"),
    )


def _alert(raw: dict[str, Any]) -> Alert:
    return Alert(raw["name"], " ".join(raw["expr"].split()), raw.get("for", "0m"), raw["severity"],
                 raw["summary"], " ".join(raw["description"].split()), tuple((raw.get("thresholds") or {}).items()),
                 raw.get("runbook", ""), tuple(yamlfile.plain(t) for t in raw.get("tests", ())))


def _check(spec: Spec, doc: Any, path: Path) -> None:
    """Rules the JSON schema cannot say; each error points at the offending metric's line."""
    families: set[str] = set()
    maps: set[str] = set()
    for i, m in enumerate(spec.metrics):
        def fail(reason: str, *key: str | int) -> None:
            raise YamlError(path, yamlfile.line_of(doc, ["metrics", i, *key]), f"metric {m.name}: {reason}")
        if m.type == "counter" and not m.name.endswith("_total"):
            fail("a counter's name ends in _total", "name")
        if m.type != "counter" and m.name.endswith("_total"):
            fail("only counters end in _total", "name")
        if m.type == "histogram":
            if m.histogram is None:
                fail("a histogram needs `histogram: {kernel_unit, min_slot, max_slot}`")
            elif m.histogram.min_slot > m.histogram.max_slot:
                fail("histogram min_slot is above max_slot", "histogram", "min_slot")
            elif not m.name.endswith(BASE_UNIT_SUFFIX[m.histogram.kernel_unit]):
                fail(f"a histogram of {m.histogram.kernel_unit} is named in base units, "
                     f"ending in {BASE_UNIT_SUFFIX[m.histogram.kernel_unit]}", "name")
        elif m.histogram is not None:
            fail("only histograms take `histogram:`", "histogram")
        for j, label in enumerate(m.labels):
            if (label.decoder == "enum") != bool(label.values):
                fail(f"label {label.name}: `values` goes with decoder enum, and only with it", "labels", j)
            if (label.decoder == "symbolic") != bool(label.event):
                fail(f"label {label.name}: `event` goes with decoder symbolic, and only with it", "labels", j)
            if label.when is not None and label.when not in spec.options:
                fail(f"label {label.name}: `when: {label.when}` names no option of this collector", "labels", j)
        if m.when is not None and m.when not in spec.options:
            fail(f"`when: {m.when}` names no option of this collector", "when")
        unknown = set(m.panel.by) - {label.name for label in m.labels}
        if unknown:
            fail(f"dashboard.by names labels the metric does not have: {', '.join(sorted(unknown))}", "dashboard")
        if m.procfs is not None and (m.type == "histogram" or m.labels):
            fail("a procfs metric is one counter or gauge, without labels", "procfs")
        family = m.name.removesuffix("_total")  # OpenMetrics names a counter's family without it
        if family in families:
            fail(f"another metric already has the family name {family}", "name")
        families.add(family)
        if m.procfs is not None:
            continue  # read from /proc: no map of its own
        shared = [other for other in spec.metrics[:i] if other.procfs is None and other.map == m.map]
        if shared and (m.value is None or any(other.value in (None, m.value) for other in shared)):
            fail(f"map {m.map} already feeds another metric; metrics sharing a map each read a `value:` field of "
                 f"their own", "map" if "map" in doc["metrics"][i] else "name")
        maps.add(m.map)
    for i, internal in enumerate(spec.internal_maps):
        where = yamlfile.line_of(doc, ["internal_maps", i])
        if internal.name in maps:
            raise YamlError(path, where, f"internal map {internal.name} has the name of another map")
        if internal.when is not None and internal.when not in spec.options:
            raise YamlError(path, where, f"internal map {internal.name}: `when: {internal.when}` names no option")
        maps.add(internal.name)
    names = {m.name for m in spec.metrics}
    seen_alerts: set[str] = set()
    for i, alert in enumerate(spec.alerts):
        where = yamlfile.line_of(doc, ["alerts", i])
        if alert.name in seen_alerts:
            raise YamlError(path, where, f"alert {alert.name} is defined twice")
        seen_alerts.add(alert.name)
        used = {re.sub(r"_(bucket|count|sum)$", "", n) for n in re.findall(r"\blmp_[a-z0-9_]+", alert.expr)}
        foreign = {n for n in used if n not in names and not n.startswith("lmp_exporter_")}
        if foreign:
            raise YamlError(path, where, f"alert {alert.name} uses metrics this collector does not export: "
                                         f"{', '.join(sorted(foreign))}")
    for name in set(doc.get("options") or {}) & set(core_options(1)):
        raise YamlError(path, yamlfile.line_of(doc, ["options", name]), f"option {name} is every collector's own: "
                        f"set its default with `series_budget:` or in the config, not here")
    for name, opt in spec.options.items():
        if opt.core:
            continue
        where = yamlfile.line_of(doc, ["options", name])
        if isinstance(opt.default, bool) != (opt.type == "bool"):
            raise YamlError(path, where, f"option {name}: default {opt.default!r} is not a {opt.type}")
        if opt.programs and opt.type != "bool":
            raise YamlError(path, where, f"option {name}: only a bool option turns programs on")
        if opt.sizes and opt.type != "int":
            raise YamlError(path, where, f"option {name}: only an int option sizes maps")
        if opt.maps and opt.type != "bool":
            raise YamlError(path, where, f"option {name}: only a bool option puts a map in another's place")
        read = {m.map for m in spec.metrics if m.procfs is None}
        unread = {old for old, _ in opt.maps} - read
        if unread:
            raise YamlError(path, where, f"option {name} replaces maps no metric reads: {', '.join(sorted(unread))}")
        taken = {new for _, new in opt.maps} & (read | {m.name for m in spec.internal_maps})
        if taken:
            raise YamlError(path, where, f"option {name}: {', '.join(sorted(taken))} already has a metric or "
                            f"internal map of its own; the map that takes another's place is named for that only")
        unknown = set(opt.sizes) - set(spec.map_names)
        if unknown:
            raise YamlError(path, where, f"option {name} sizes maps the spec does not name: {', '.join(sorted(unknown))}")
    _check_function(spec, doc, path)
    for i, run in enumerate(spec.bench):
        for key, _ in run.options:
            if key not in spec.options:
                raise YamlError(path, yamlfile.line_of(doc, ["bench", i, "options", key]), f"bench: no option {key!r}")
        if spec.loop_source(run) is None:
            raise YamlError(path, yamlfile.line_of(doc, ["bench", i, "loop"]),
                            f"bench: no {run.loop}.c in {spec.directory} nor in {paths.BENCH_DIR / 'loops'}")


def _check_function(spec: Spec, doc: Any, path: Path) -> None:
    """A function component has programs and a policy; a collector has neither."""
    def fail(reason: str, *key: str) -> None:
        raise YamlError(path, yamlfile.line_of(doc, list(key)), reason)
    function = spec.kind == "function"
    if function != bool(spec.programs):
        fail("a function component requires xdp or cgroup_sock_addr programs, and only it does", "requires")
    if function != (spec.policy is not None):
        fail("a function component has `policy:` (its JSON schema), and only it does", "policy" if spec.policy else "kind")
    if "xdp" in spec.programs and len(spec.programs) > 1:
        fail("a function attaches either to interfaces (xdp) or to cgroups, not both", "requires")
    if spec.events is not None and spec.events not in {m.name for m in spec.internal_maps}:
        fail(f"events: {spec.events} is not one of the internal_maps", "events")
    if spec.policy is not None:
        import jsonschema  # only where specs are checked: never in a running exporter

        try:
            jsonschema.Draft202012Validator.check_schema(spec.policy)
        except jsonschema.SchemaError as err:
            fail(f"policy: not a valid JSON schema: {err.message}", "policy", *map(str, err.path))


def load(path: Path, check: bool = True) -> Spec:
    """Load and validate a spec file; raise YamlError (`file:line: reason`) when it is wrong. A running
    exporter loads its spec unchecked (check=False): `lmp build` checked it when it built the object."""
    doc = yamlfile.load(path, SCHEMA, check=check)
    folder = path.parent.name
    if doc["name"] != folder or path.name != f"{folder}.yaml":
        raise YamlError(path, yamlfile.line_of(doc, ["name"]),
                        f"name {doc['name']!r} must match its folder and file name ({folder}/{folder}.yaml)")
    requires = doc.get("requires") or {}
    spec = Spec(
        name=doc["name"], summary=doc["summary"], directory=path.parent, kind=doc.get("kind", "collector"),
        answers=doc.get("answers", ""), port=doc.get("port", 0), enabled=doc.get("enabled", True),
        tracepoints=tuple(requires.get("tracepoints", ())),
        options={**{k: Option(k, v["type"], v["default"], v["help"], tuple(v.get("programs", ())),
                              tuple(v.get("sizes", ())), maps=tuple((v.get("maps") or {}).items()))
                    for k, v in (doc.get("options") or {}).items()},
                 **core_options(doc.get("series_budget", DEFAULT_SERIES_BUDGET))},
        metrics=tuple(_metric(m) for m in doc["metrics"]),
        internal_maps=tuple(InternalMap(m["name"], m["help"], m.get("when"), m.get("per_process", False))
                            for m in doc.get("internal_maps", ())),
        uprobes=Uprobes(requires["uprobes"]["library"], {k: tuple(v) for k, v in requires["uprobes"]["functions"].items()})
        if "uprobes" in requires else None,
        alerts=tuple(_alert(a) for a in doc.get("alerts", ())),
        programs={**({"xdp": requires["xdp"]} if "xdp" in requires else {}),
                  **{f"cgroup/{hook}": fn for hook, fn in (requires.get("cgroup_sock_addr") or {}).items()}},
        policy=yamlfile.plain(doc["policy"]) if "policy" in doc else None, events=doc.get("events"),
        bench=tuple(BenchRun(b["loop"], b["operation"], b["operations"], tuple((b.get("options") or {}).items()),
                             b.get("ebpf_exporter"), tuple(b.get("libbpf_tools", ()))) for b in doc.get("bench", ())),
    )
    if check:
        _check(spec, doc, path)
    return spec


@dataclass(frozen=True)
class SelfSpec:
    """exporters/_lib/self.yaml: what every exporter exports about itself (lmp_exporter_*), and its alerts."""
    metrics: tuple[Metric, ...]
    alerts: tuple[Alert, ...]
    function_only: frozenset[str] = frozenset()  # metrics only function components export (their policy)
    cgroup_only: frozenset[str] = frozenset()  # metrics only exporters that saw a cgroup export (lmp_cgroup_info)
    uprobes_only: frozenset[str] = frozenset()  # metrics only collectors with uprobes export

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)


@functools.cache
def load_self(path: Path = SELF, check: bool = True) -> SelfSpec:
    """self.yaml; a running exporter reads it unchecked (check=False), as it reads its spec."""
    doc = yamlfile.load(path, SCHEMA, "self", check)
    metrics = tuple(Metric(m["name"], m["type"], m["help"], map="", labels=tuple(Label(n, n, "") for n in m["labels"]))
                    for m in doc["metrics"])
    return SelfSpec(metrics, tuple(_alert(a) for a in doc["alerts"]),
                    frozenset(m["name"] for m in doc["metrics"] if m.get("kind") == "function"),
                    frozenset(m["name"] for m in doc["metrics"] if m.get("kind") == "cgroup"),
                    frozenset(m["name"] for m in doc["metrics"] if m.get("kind") == "uprobes"))


def parse_option(spec: Spec, assignment: str) -> tuple[str, bool | int]:
    """`name=value` from the command line, checked against the spec's options."""
    name, sep, text = assignment.partition("=")
    opt = spec.options.get(name)
    if not sep or opt is None:
        known = ", ".join(spec.options) or "none"
        raise ValueError(f"{spec.name}: unknown option {assignment!r} (options: {known})")
    return name, coerce_option(opt, text)


def coerce_option(opt: Option, value: Any) -> bool | int:
    if opt.type == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
    elif not isinstance(value, bool):
        try:
            number = int(value)
        except (TypeError, ValueError):
            pass
        else:
            if opt.minimum is not None and number < opt.minimum:
                raise ValueError(f"option {opt.name} is at least {opt.minimum}, not {number}")
            return number
    raise ValueError(f"option {opt.name} takes a {opt.type}, not {value!r}")
