"""config/lmp.yaml: read, validated against config/lmp.schema.json and against the collectors' specs."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporters._lib import catalog, paths, yamlfile
from exporters._lib.serving import parse_listen
from exporters._lib.spec import Spec, coerce_option
from exporters._lib.yamlfile import YamlError

if TYPE_CHECKING:
    from exporters._lib.function.policy import PolicySource


DEFAULT_ADDRESS = "127.0.0.1"  # exporters' labels name processes and disks: loopback unless the config says


@dataclass
class CollectorConfig:
    """One collector as it runs here: its spec's port and enabled, unless its entry in the config says
    otherwise."""
    name: str
    listen: str
    enabled: bool = True
    options: dict[str, bool | int] = field(default_factory=dict)  # every option, defaults filled in
    policy: dict[str, Any] = field(default_factory=dict)  # a function component's policy, as written


@dataclass
class PrometheusConfig:
    enabled: bool = True
    listen: str = "127.0.0.1:9490"
    scrape_interval: str = "5s"
    retention: str = "7d"
    data_dir: str = "/var/lib/lmp/prometheus"
    rule_files: list[str] = field(default_factory=lambda: [str(paths.ALERT_RULES)])


@dataclass
class AdminConfig:
    """The admin service. When enabled, `lmp run` starts it and it owns the exporter processes; the local
    Prometheus then finds its targets through the admin's service discovery."""
    enabled: bool = True
    listen: str = "127.0.0.1:9480"
    data_dir: str = "/var/lib/lmp"  # SQLite, the JWT signing key, the service token: root only
    run_dir: str = "/run/lmp"  # the supervised exporters' pidfiles and logs
    scenario_commands: bool = False  # may an admin run commands (as root) through the scenario API?


@dataclass
class Config:
    path: Path
    prometheus: PrometheusConfig
    collectors: dict[str, CollectorConfig]
    admin: AdminConfig = field(default_factory=AdminConfig)
    btf_path: str | None = None  # the kernel's BTF from this file, where /sys/kernel/btf/vmlinux is missing
    listen_address: str = DEFAULT_ADDRESS  # collectors serve /metrics here, each on its spec's port
    disable_defaults: bool = False  # true: only collectors whose entry says enabled: true run
    web_config: str | None = None  # TLS and basic auth (exporter-toolkit's format), absolute; None: plain HTTP


def as_plain(cfg: Config) -> dict[str, Any]:
    """The config as JSON-ready data; from_plain() makes it again."""
    return {**asdict(cfg), "path": str(cfg.path)}


def from_plain(data: dict[str, Any]) -> Config:
    return Config(Path(data["path"]), PrometheusConfig(**data["prometheus"]),
                  {name: CollectorConfig(**c) for name, c in data["collectors"].items()},
                  AdminConfig(**data["admin"]), data["btf_path"], data["listen_address"], data["disable_defaults"],
                  data.get("web_config"))


def load_in_child(path: Path | None = None) -> Config:
    """load(), in a short-lived child of this process: the checks import a JSON schema validator, several
    MB that would otherwise stay for good in a long-lived process (`lmp run`'s launcher). The caller must
    be single-threaded, so that the child copies no lock another thread holds. ValueError (`file:line:
    reason`) when the config is wrong."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            payload = {"config": as_plain(load(path))}
        except (ValueError, OSError) as err:
            payload = {"error": str(err)}
        with os.fdopen(write, "w") as out:
            json.dump(payload, out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        payload = json.load(answer)
    os.waitpid(pid, 0)
    if "error" in payload:
        raise ValueError(payload["error"])
    return from_plain(payload["config"])


def path_from_env() -> Path:
    return Path(os.environ.get("LMP_CONFIG", paths.DEFAULT_CONFIG))


def load(path: Path | None = None) -> Config:
    """Read and check the config; YamlError (`file:line: reason`) names the first problem."""
    path = path or path_from_env()
    try:
        text = path.read_text()
    except OSError as err:
        raise YamlError(path, None, err.strerror or str(err)) from None
    return loads(text, path)


MAX_DEPTH = 32  # the config nests 4 deep; YAML's builders recurse, so thousands of levels raise RecursionError


def plain_yaml(text: str, path: Path | str) -> None:
    """Refuse aliases, tags and deep nesting before anything is built from the text: an alias of an alias
    ... expands exponentially (a few hundred bytes can cost gigabytes), a tagged node is none of the plain
    types the schema knows, and the YAML builders recurse once per level. The config needs none of them.
    Parsing events costs time linear in the text, and no recursion."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent

    depth = 0
    try:
        for event in YAML(typ="safe", pure=True).parse(text):
            line = event.start_mark.line + 1 if event.start_mark else None
            if isinstance(event, AliasEvent) or (isinstance(event, NodeEvent) and event.anchor):
                raise YamlError(path, line, "anchors and aliases (&name, *name) are not allowed in the config")
            if isinstance(event, NodeEvent) and getattr(event, "tag", None):
                raise YamlError(path, line, f"tags ({event.tag}) are not allowed in the config")
            depth += isinstance(event, CollectionStartEvent) - isinstance(event, CollectionEndEvent)
            if depth > MAX_DEPTH:
                raise YamlError(path, line, f"the config nests more than {MAX_DEPTH} levels deep")
    except YAMLError:
        return  # not YAML at all: the parser proper reports it with its line


def loads(text: str, path: Path | str) -> Config:
    """Check config text without a file: `path` only names it in errors (the admin checks a candidate
    this way before it replaces the file)."""
    path = Path(path)
    plain_yaml(text, path)
    doc = yamlfile.parse(text, path)
    if doc is None:
        raise YamlError(path, None, "the file is empty")
    yamlfile.validate(doc, paths.CONFIG_SCHEMA, path)
    entries = doc.get("collectors") or {}
    known = catalog.names()
    for name in entries:
        if name not in known:
            raise YamlError(path, yamlfile.line_of(doc, ["collectors", name]),
                            f"no collector named {name!r} (collectors: {', '.join(known)})")
    # `lmp build` checks the specs; here only their ports, defaults and options count
    collectors = {name: _collector(path, doc, catalog.load(name, check=False), entries.get(name) or {})
                  for name in known}
    prometheus = PrometheusConfig(**(doc.get("prometheus") or {}))
    admin = AdminConfig(**(doc.get("admin") or {}))
    listeners = [("prometheus", prometheus.listen, ["prometheus", "listen"])] if prometheus.enabled else []
    listeners += [("admin", admin.listen, ["admin", "listen"])] if admin.enabled else []
    # The spec's ports first: a clash is reported at the listen address written in the file, if one is
    written = [c for c in collectors.values() if c.enabled and "listen" in (entries.get(c.name) or {})]
    listeners += [(f"{c.name} (the port in its spec, exporters/{c.name}/{c.name}.yaml)", c.listen,
                   ["collectors", c.name, "listen"]) for c in collectors.values() if c.enabled and c not in written]
    listeners += [(c.name, c.listen, ["collectors", c.name, "listen"]) for c in written]
    _check_listeners(path, doc, listeners)
    return Config(path, prometheus, collectors, admin, doc.get("btf_path"), *_defaults(doc), _web_config(path, doc))


def _defaults(doc: Any) -> tuple[str, bool]:
    return doc.get("listen_address", DEFAULT_ADDRESS), doc.get("disable_defaults", False)


def _web_config(path: Path, doc: Any) -> str | None:
    """The web config file (relative: the config's neighbour), checked now: a bad one is said with the
    config, not by every exporter failing to start."""
    if not doc.get("web_config"):
        return None
    from exporters._lib import webconfig

    web = (path.parent / doc["web_config"]).resolve()
    try:
        webconfig.load(web)
    except YamlError as err:
        raise YamlError(path, yamlfile.line_of(doc, ["web_config"]), f"web_config: {err}") from None
    return str(web)


def _collector(path: Path, doc: Any, spec: Spec, raw: Any) -> CollectorConfig:
    """One collector: its spec's defaults, overridden by its entry (`raw`, {} without one), whose options are
    checked against the spec (each error with its line)."""
    options = {k: o.default for k, o in spec.options.items()}
    for key, value in (raw.get("options") or {}).items():
        where = yamlfile.line_of(doc, ["collectors", spec.name, "options", key])
        if key not in spec.options:
            raise YamlError(path, where, f"collector {spec.name} has no option {key!r} "
                                         f"(options: {', '.join(spec.options) or 'none'})")
        try:
            options[key] = coerce_option(spec.options[key], value)
        except ValueError as err:
            raise YamlError(path, where, str(err)) from None
    policy = _policy(path, doc, spec, raw) if spec.kind == "function" or "policy" in raw else {}
    address, disable_defaults = _defaults(doc)
    listen = raw.get("listen") or f"{address}:{spec.port}"
    enabled = raw.get("enabled", False if disable_defaults else spec.enabled)
    return CollectorConfig(spec.name, listen, enabled, options, policy)


def entry(path: Path, spec: Spec) -> tuple[CollectorConfig, str | None, Path | None]:
    """What a lone exporter reads of the config: itself (its entry over its spec's defaults), btf_path and
    the web config, its options checked against its spec, without validating the rest of the file (`lmp
    run`, the admin and `lmp list` do that): a running collector imports no schema validator."""
    doc = yamlfile.load(path, paths.CONFIG_SCHEMA, check=False)
    raw = (doc.get("collectors") or {}).get(spec.name) or {}
    web = (path.parent / doc["web_config"]).resolve() if doc.get("web_config") else None
    return _collector(path, doc, spec, raw), doc.get("btf_path"), web


def policy_source(path: Path, name: str) -> PolicySource:
    """A function component's policy: its entry's in the config, read again whenever the file changes."""
    from exporters._lib.function.policy import PolicySource

    def read() -> dict[str, Any]:
        return load(path).collectors[name].policy
    return PolicySource(path, read)


def _policy(path: Path, doc: Any, spec: Spec, raw: Any) -> dict[str, Any]:
    """A function component's policy, checked by its spec's schema and its policy.py, each error with its
    line. Whether the interfaces and cgroups it names exist is checked where it is applied: a config that
    names an interface is not wrong while the interface is down or its container stopped."""
    location: list[str | int] = ["collectors", spec.name, "policy"]
    if "policy" in raw and spec.kind != "function":
        raise YamlError(path, yamlfile.line_of(doc, location), f"collector {spec.name} takes no policy "
                                                               f"(only function components do)")
    policy = yamlfile.plain(raw.get("policy") or {})
    if spec.kind == "function":
        from exporters._lib.function.policy import PolicyError, parse

        try:
            parse(spec, policy)
        except PolicyError as err:
            where = ".".join(map(str, [*location, *err.location]))
            raise YamlError(path, yamlfile.line_of(doc, [*location, *err.location]), f"{where}: {err.reason}") from None
    return policy


WILDCARDS = ("0.0.0.0", "::", "")


def _check_listeners(path: Path, doc: Any, listeners: list[tuple[str, str, list[str]]]) -> None:
    """Each listen address is HOST:PORT with a real port, and no two enabled services take one port."""
    taken: dict[int, tuple[str, str]] = {}
    for owner, listen, location in listeners:
        try:
            host, port = parse_listen(listen)
        except ValueError as err:
            raise YamlError(path, yamlfile.line_of(doc, location), f"{owner}: {err}") from None
        if port in taken:
            other, other_host = taken[port]
            if host == other_host or host in WILDCARDS or other_host in WILDCARDS:
                raise YamlError(path, yamlfile.line_of(doc, location),
                                f"{owner}: port {port} is already used by {other}")
        taken[port] = (owner, host)
