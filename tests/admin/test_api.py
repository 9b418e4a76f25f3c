"""Roles, users, the component catalog and bad input, through the HTTP API."""
from __future__ import annotations

import os
import urllib.parse

import pytest

from exporters._lib import catalog
from lmp import config as configs

from .conftest import PASSWORDS

ENDPOINTS = [  # (method, path, body, the lowest role allowed)
    ("get", "/api/v1/components", None, "view"),
    ("get", "/api/v1/components/syscalls", None, "view"),
    ("get", "/api/v1/users", None, "root"),
    ("post", "/api/v1/users", {"name": "newbie", "password": "newbie-pass-Ahw9qk", "role": "viewer"}, "root"),
    ("patch", "/api/v1/users/view", {"role": "viewer"}, "root"),
    ("put", "/api/v1/users/me/password", {"old_password": "x", "new_password": "another-one-Ahw9qk"}, "view"),
    ("get", "/api/v1/config", None, "view"),
    ("get", "/api/v1/audit", None, "root"),
    ("get", "/api/v1/sd", None, "view"),
    ("get", "/api/v1/users/me", None, "view"),
    ("get", "/api/v1/charts/overview", None, "view"),
    ("post", "/api/v1/components/runqlat/disable", None, "ops"),
    ("post", "/api/v1/components/runqlat/enable", None, "ops"),
    ("put", "/api/v1/config", None, "root"),  # the admin gets 428: no If-Match
    ("get", "/api/v1/components/netguard/policy", None, "view"),
    ("put", "/api/v1/components/netguard/policy", {"mode": "observe", "interfaces": ["lo"],
                                                  "blocklist": ["192.0.2.0/24"]}, "root"),
    ("get", "/api/v1/components/connguard/policy", None, "view"),
    ("put", "/api/v1/components/connguard/policy", {"cgroups": ["/"], "destinations": [{"cidr": "::1"}]}, "root"),
    ("post", "/api/v1/auth/refresh", None, None),  # an access token is no refresh token: 401 for all
    ("get", "/api/v1/scenarios", None, "view"),
    ("post", "/api/v1/scenarios", {"pid": os.getpid(), "duration": 1}, "ops"),  # attach: observes
    ("post", "/api/v1/scenarios", {"command": ["true"], "duration": 1}, "root"),  # run: a command as root
    ("get", "/api/v1/scenarios/1", None, "view"),
    ("get", "/api/v1/scenarios/1/artifacts/run.json", None, "view"),
    ("post", "/api/v1/scenarios/1/stop", None, "ops"),
    ("delete", "/api/v1/scenarios/1", None, "root"),
    ("get", "/api/v1/top", None, "view"),
    ("delete", "/api/v1/users/view", None, "root"),  # last: the viewer is gone after it
]
RANK = {"view": 0, "ops": 1, "root": 2}


@pytest.fixture
def scenario_run(app):
    """Scenario 1, complete, with its run.json, for the matrix's /scenarios/1 rows."""
    import json
    from pathlib import Path

    from admin.models import ScenarioRun, db
    with app.app_context():
        db.session.add(ScenarioRun(kind="run", target='["true"]', options='{"duration": 1}', owner="root",
                                   status="complete"))
        db.session.commit()
    folder = Path(app.config["DATA_DIR"]) / "scenarios" / "1"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"ended_by": "exit"}))


@pytest.mark.parametrize("method, path, body, lowest", ENDPOINTS)
def test_permission_matrix(client, auth, config_file, scenario_run, method, path, body, lowest):
    assert getattr(client, method)(path, json=body).status_code == 401  # no token
    for who in ("view", "ops", "root"):
        response = getattr(client, method)(path, json=body, headers=auth.headers(who))
        if lowest is None:
            assert response.status_code == 401 and "refresh" in response.json["message"], who
        elif RANK[who] < RANK[lowest]:
            assert response.status_code == 403, (who, response.json)
        else:  # allowed: the old password is wrong (403), or the config edit has no If-Match (428)
            expected = {"password": 403, "config": 428}.get(path.rsplit("/", 2)[-1], 0)
            assert response.status_code in (200, 201, 202, 204, expected), (who, response.json)


def test_health_needs_no_token(client):
    assert client.get("/api/v1/health").json == {"status": "ok"}


def test_catalog_lists_every_collector_from_its_spec(client, auth):
    components = client.get("/api/v1/components", headers=auth.headers("view")).json
    assert [c["name"] for c in components] == catalog.names()
    syscalls = next(c for c in components if c["name"] == "syscalls")
    assert syscalls["hooks"] == ["raw_syscalls:sys_exit"]
    assert {"name": "lmp_syscalls_total", "type": "counter", "help": "System calls completed, by syscall.",
            "labels": ["syscall", "cgroup"]} in syscalls["metrics"]
    assert syscalls["can_run"] is True and syscalls["enabled"] is True and syscalls["listen"] == "127.0.0.1:9451"
    assert client.get("/api/v1/components/nosuch", headers=auth.headers("view")).status_code == 404


def test_users_lifecycle_and_the_last_admin(client, auth):
    root = auth.headers("root")
    created = client.post("/api/v1/users", json={"name": "alice", "password": "alice-pass-Ahw9qk", "role": "operator"},
                          headers=root)
    assert created.status_code == 201 and created.json["role"] == "operator" and "password" not in created.json
    assert client.post("/api/v1/users", json={"name": "alice", "password": "alice-pass-Ahw9qk", "role": "viewer"},
                       headers=root).status_code == 409
    assert client.patch("/api/v1/users/alice", json={"role": "viewer"}, headers=root).json["role"] == "viewer"
    assert client.delete("/api/v1/users/alice", headers=root).status_code == 204
    assert client.delete("/api/v1/users/root", headers=root).status_code == 409  # the last admin stays
    assert client.patch("/api/v1/users/root", json={"role": "viewer"}, headers=root).status_code == 409


def test_own_password_change(client, auth):
    headers = auth.headers("view")
    wrong = client.put("/api/v1/users/me/password", json={"old_password": "nope", "new_password": "another-one-Ahw9qk"},
                       headers=headers)
    assert wrong.status_code == 403
    ok = client.put("/api/v1/users/me/password",
                    json={"old_password": PASSWORDS["view"], "new_password": "another-one-Ahw9qk"}, headers=headers)
    assert ok.status_code == 200
    assert client.get("/api/v1/users/me", headers=headers).status_code == 401  # the old token ended with it
    fresh = {"Authorization": f"Bearer {ok.json['access_token']}"}  # the new one, for the session that changed it
    assert client.get("/api/v1/users/me", headers=fresh).json["name"] == "view"
    assert client.post("/api/v1/auth/login", json={"username": "view", "password": "another-one-Ahw9qk"}).status_code == 200


@pytest.mark.parametrize("data, content_type, code", [
    ('{"username": "root", "pass', "application/json", 400),  # truncated JSON
    ('{"username": 5, "password": []}', "application/json", 422),  # wrong types
    ('x' * (2 << 20), "application/json", 413),  # a body far larger than any request
    ('[]', "application/json", 422),
])
def test_bad_input_is_a_json_4xx(client, data, content_type, code):
    response = client.post("/api/v1/auth/login", data=data, content_type=content_type)
    assert response.status_code == code
    assert response.is_json and response.json["code"] == code


def test_me_says_who_and_which_role(client, auth):
    for who, role in (("view", "viewer"), ("ops", "operator"), ("root", "admin")):
        assert client.get("/api/v1/users/me", headers=auth.headers(who)).json["role"] == role


def test_charts_are_the_generated_dashboards_panels_for_this_host(client, auth):
    import socket
    headers = auth.headers("view")
    charts = client.get("/api/v1/charts/overview", headers=headers).json
    titles = [c["title"] for c in charts]
    assert "Run-queue latency (p50, p90, p99)" in titles and "OOM kills (in each interval)" in titles
    for chart in charts:
        for q in chart["queries"]:
            assert "$" not in q["expr"] and f'instance=~"{socket.gethostname()}"' in q["expr"]
    assert client.get("/api/v1/charts/runqlat", headers=headers).status_code == 200
    assert client.get("/api/v1/charts/nosuch", headers=headers).status_code == 404
    assert client.get(f"/api/v1/charts/overview/{10**6}", headers=headers).status_code == 404
    assert client.get("/api/v1/charts/overview/2?minutes=0", headers=headers).status_code == 422


def test_charts_for_one_cgroup_match_its_path_exactly(client, auth):
    """The containers page links to a collector's page for one cgroup: its charts' PromQL matches that path
    and nothing else (regex characters escaped, a quote kept inside the string, nothing read as a variable)."""
    headers = auth.headers("view")

    def exprs(query: str) -> list[str]:
        response = client.get(f"/api/v1/charts/pagefault{query}", headers=headers)
        assert response.status_code == 200, response.json
        return [q["expr"] for c in response.json for q in c["queries"] if "lmp_page_faults_total" in q["expr"]]

    assert exprs("") and all('cgroup=~".*"' in e for e in exprs(""))
    path = '/system.slice/docker-1a.scope/a+b (c)"$pod'
    filtered = exprs("?" + urllib.parse.urlencode({"cgroup": path}))
    assert filtered and all(r'cgroup=~"/system\\.slice/docker-1a\\.scope/a\\+b \\(c\\)\"\\$pod"' in e for e in filtered)
    assert client.get("/api/v1/charts/pagefault?cgroup=%2Fa%0A", headers=headers).status_code == 422
    assert client.get("/api/v1/charts/pagefault/4?cgroup=", headers=headers).status_code == 422


def test_chart_data_without_a_prometheus_is_a_clear_503(client, auth, config_file):
    config_file.write_text(config_file.read_text().replace("listen: 127.0.0.1:9490", "listen: 127.0.0.1:1"))
    first = client.get("/api/v1/charts/overview", headers=auth.headers("view")).json[0]["id"]
    response = client.get(f"/api/v1/charts/overview/{first}", headers=auth.headers("view"))
    assert response.status_code == 503 and "does not answer" in response.json["message"]


def test_enable_needs_no_entry_in_the_config(client, auth, config_file):
    """offcpu is off by its spec and has no entry in the shipped config: enabling it makes one, keeping the
    file's comments; the catalog then shows it on, at its spec's port."""
    before = config_file.read_text()
    assert "\n  offcpu:" not in before
    answer = client.post("/api/v1/components/offcpu/enable", headers=auth.headers("ops"))
    assert answer.status_code == 200 and answer.json["enabled"] is True
    assert answer.json["listen"] == f"127.0.0.1:{catalog.load('offcpu').port}"
    after = config_file.read_text()
    assert configs.load(config_file).collectors["offcpu"].enabled
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == ["  offcpu:", "    enabled: true"], added  # the rest, comments and layout, kept
    assert client.post("/api/v1/components/offcpu/disable", headers=auth.headers("ops")).json["enabled"] is False
