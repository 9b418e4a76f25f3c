"""The component page's series against budget, and its cgroups by name, from a real running exporter."""
from __future__ import annotations

from admin.api.components import exported
from tests.conftest import made_cgroup
from tests.exporters.test_identity import run_in


def test_series_budget_and_named_cgroups_of_a_running_exporter(exporter):
    signals = exporter("signal", "-o", "cgroup=true", "-o", "series_budget=500")
    with made_cgroup() as (top, path):
        group = top / "lmp-admin-test.service"
        group.mkdir()
        try:
            run_in(group)
            found = exported(f"127.0.0.1:{signals.port}")
        finally:
            group.rmdir()
    assert found["series_budget"] == 500 and 0 < found["series"] <= 500
    assert {"cgroup": f"{path}/lmp-admin-test.service", "name": "lmp-admin-test.service", "kind": "unit"} \
        in found["cgroups"]
    assert exported(None) == {"series": None, "series_budget": None, "cgroups": []}


def test_the_containers_api_names_a_busy_service(exporter, client, auth, tmp_path, app):
    signals = exporter("signal", "-o", "cgroup=true")
    config = tmp_path / "only-signal.yaml"
    config.write_text(f"disable_defaults: true\ncollectors:\n  signal:\n    enabled: true\n    listen: 127.0.0.1:{signals.port}\n")
    app.config["LMP_CONFIG"] = str(config)
    headers = auth.headers("view")
    with made_cgroup() as (top, path):
        group = top / "lmp-admin-top.service"
        group.mkdir()
        try:
            client.get("/api/v1/top", headers=headers)  # the read the next one's rates start from
            run_in(group)
            found = client.get("/api/v1/top", headers=headers).json
        finally:
            group.rmdir()
    assert "lmp_signals_generated" in found["columns"]
    row = next(r for r in found["rows"] if r["cgroup"] == f"{path}/lmp-admin-top.service")
    assert (row["name"], row["kind"], row["collector"]) == ("lmp-admin-top.service", "unit", "signal")
    assert row["rates"]["lmp_signals_generated"] > 0
