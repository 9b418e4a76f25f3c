"""config/lmp.yaml: the shipped one loads; a bad edit is refused with its line and reason."""
from __future__ import annotations

import pytest

from exporters._lib import catalog, paths
from exporters._lib.yamlfile import YamlError
from lmp import config as configs

SHIPPED = paths.DEFAULT_CONFIG.read_text()


def test_shipped_config_loads_with_defaults_filled_in():
    cfg = configs.load(paths.DEFAULT_CONFIG)
    assert set(cfg.collectors) == set(catalog.names())  # every collector has its place and port
    assert cfg.collectors["syscalls"].options == {"latency": False, "filter_tgid": 0, "cgroup": False, "series_budget": 10000,
                                                  "min_cgroup_age": 0, "forget_after": 300}
    assert cfg.prometheus.listen == "127.0.0.1:9490"
    assert cfg.admin.enabled and cfg.admin.listen == "127.0.0.1:9480" and cfg.admin.data_dir == "/var/lib/lmp"


def test_every_collector_runs_as_its_spec_says_unless_an_entry_overrides_it(tmp_path):
    cfg = configs.load(paths.DEFAULT_CONFIG)
    for name in catalog.names():
        spec = catalog.load(name)
        assert cfg.collectors[name].listen == f"127.0.0.1:{spec.port}"
        assert cfg.collectors[name].enabled is spec.enabled
    text = SHIPPED.replace("listen_address: 127.0.0.1", "listen_address: 0.0.0.0").replace(
        "collectors:\n", "collectors:\n  offcpu: {enabled: true}\n  runqlat: {enabled: false}\n", 1)
    cfg = configs.load(write(tmp_path, text))
    assert cfg.collectors["offcpu"].enabled and not cfg.collectors["runqlat"].enabled
    assert cfg.collectors["syscalls"].listen == f"0.0.0.0:{catalog.load('syscalls').port}"


def test_disable_defaults_runs_only_what_the_config_turns_on(tmp_path):
    text = SHIPPED.replace("disable_defaults: false", "disable_defaults: true").replace(
        "collectors:\n", "collectors:\n  offcpu: {enabled: true}\n", 1)
    assert {n for n, c in configs.load(write(tmp_path, text)).collectors.items() if c.enabled} == {"offcpu"}


# An entry for runqlat, put first under `collectors:`, for the edits below to break.
ENTRY = "collectors:\n  runqlat:\n    enabled: true\n    listen: 127.0.0.1:9452\n"
WITH_ENTRY = SHIPPED.replace("collectors:\n", ENTRY, 1)


@pytest.mark.parametrize("old, new, reason", [
    ("  runqlat:\n", "  runqlatt:\n", "no collector named 'runqlatt'"),
    ("latency: false", "latency: maybe", "is not of type"),
    ("latency: false", "latencyy: false", "has no option 'latencyy'"),
    ("listen: 127.0.0.1:9452", "listen: 127.0.0.1:9451", "already used by syscalls"),
    ("listen: 127.0.0.1:9452", "listen: 127.0.0.1:9480", "already used by admin"),
    ("run_dir: /run/lmp", "run_dirr: /run/lmp", "Additional properties are not allowed"),
    ("listen: 127.0.0.1:9452", "listen: nowhere", "'nowhere' is not HOST:PORT"),
    ("scrape_interval: 5s", "scrape_interval: often", "'often' is not a duration"),
    ("listen_address: 127.0.0.1 ", "listen_address: 127.0.0.1:80 ", "is not an address without a port"),
    ("  enabled: true\n  listen: 127.0.0.1:9490", "  enabled: true\n listen: 127.0.0.1:9490", "invalid YAML"),
])
def test_bad_edit_names_line_and_reason(tmp_path, old, new, reason):
    assert old in WITH_ENTRY
    edited = WITH_ENTRY.replace(old, new, 1)
    path = tmp_path / "lmp.yaml"
    path.write_text(edited)
    with pytest.raises(YamlError) as err:
        configs.load(path)
    assert reason in err.value.reason
    changed_line = next(i for i, (a, b) in enumerate(zip(WITH_ENTRY.splitlines(), edited.splitlines()), 1) if a != b)
    assert abs(err.value.line - changed_line) <= 1, str(err.value)


def write(tmp_path, text: str):
    path = tmp_path / "lmp.yaml"
    path.write_text(text)
    return path


def test_a_disabled_collector_does_not_hold_its_port(tmp_path):
    text = WITH_ENTRY.replace("  syscalls:\n", "  syscalls:\n    enabled: false\n", 1)
    text = text.replace("listen: 127.0.0.1:9452", "listen: 127.0.0.1:9451")
    assert configs.load(write(tmp_path, text)).collectors["runqlat"].listen == "127.0.0.1:9451"


@pytest.mark.parametrize("new, reason", [
    ("listen: 0.0.0.0:9451", "port 9451 is already used by syscalls"),
    ("listen: :9451", "port 9451 is already used by syscalls"),
    ("listen: 127.0.0.1:99999", "is not HOST:PORT"),
])
def test_ports_are_checked_with_their_line(tmp_path, new, reason):
    text = WITH_ENTRY.replace("listen: 127.0.0.1:9452", new)
    with pytest.raises(YamlError) as err:
        configs.load(write(tmp_path, text))
    assert reason in err.value.reason
    assert err.value.line == WITH_ENTRY.splitlines().index("    listen: 127.0.0.1:9452") + 1


def test_an_empty_config_is_refused(tmp_path):
    with pytest.raises(YamlError, match="the file is empty"):
        configs.load(write(tmp_path, "# nothing\n"))
