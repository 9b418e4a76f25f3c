"""The config resource: ETag and If-Match, a bad edit refused with its line, atomic writes with a backup."""
from __future__ import annotations


import pytest

from lmp import config as configs


def test_read_edit_and_audit(client, auth, config_file):
    viewer = client.get("/api/v1/config", headers=auth.headers("view"))
    assert viewer.status_code == 200 and viewer.data.decode() == config_file.read_text()
    edited = viewer.data.decode().replace("latency: false", "latency: true")
    root = {**auth.headers("root"), "If-Match": viewer.headers["ETag"]}
    assert client.put("/api/v1/config", data=edited, headers=root).status_code == 204
    assert config_file.read_text() == edited
    assert config_file.with_name("lmp.yaml.bak").read_text() == viewer.data.decode()
    assert configs.load(config_file).collectors["syscalls"].options["latency"] is True
    events = client.get("/api/v1/audit", headers=auth.headers("root")).json  # newest first; this login is [0]
    assert [(e["actor"], e["action"]) for e in events[:3]] == [("root", "login"), ("root", "edit config"), ("root", "login")]


def test_a_stale_etag_is_412_and_a_missing_one_428(client, auth, config_file):
    etag = client.get("/api/v1/config", headers=auth.headers("root")).headers["ETag"]
    text = config_file.read_text()
    first = client.put("/api/v1/config", data=text.replace("5s", "10s"), headers={**auth.headers("root"), "If-Match": etag})
    assert first.status_code == 204
    second = client.put("/api/v1/config", data=text, headers={**auth.headers("root"), "If-Match": etag})
    assert second.status_code == 412
    assert client.put("/api/v1/config", data=text, headers=auth.headers("root")).status_code == 428


@pytest.mark.parametrize("old, new, reason", [
    ("  runqlat:\n", "  runqlatt:\n", "no collector named 'runqlatt'"),
    ("listen: 127.0.0.1:9452", "listen: 127.0.0.1:99999", "is not HOST:PORT"),
    ("scrape_interval: 5s", "scrape_interval: [5s", "invalid YAML"),
])
def test_a_bad_edit_is_refused_with_its_line_and_nothing_changes(client, auth, config_file, old, new, reason):
    before = config_file.read_text()
    etag = client.get("/api/v1/config", headers=auth.headers("root")).headers["ETag"]
    response = client.put("/api/v1/config", data=before.replace(old, new, 1),
                          headers={**auth.headers("root"), "If-Match": etag})
    assert response.status_code == 422
    assert reason in response.json["message"] and isinstance(response.json["errors"]["line"], int)
    assert response.json["message"].startswith(f"lmp.yaml:{response.json['errors']['line']}: ")
    assert config_file.read_text() == before
    assert not list(config_file.parent.glob(".lmp.yaml*"))  # no temporary file left


def test_operators_may_not_edit_the_config(client, auth, config_file):
    etag = client.get("/api/v1/config", headers=auth.headers("ops")).headers["ETag"]
    response = client.put("/api/v1/config", data=config_file.read_text(), headers={**auth.headers("ops"), "If-Match": etag})
    assert response.status_code == 403
