"""The config resource: ETag and If-Match, a bad edit refused with its line, atomic writes with a backup; YAML
tags and aliases refused before anything is built from them; a file broken by hand answered with where."""
from __future__ import annotations

import time

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
    ("  netguard:\n", "  netguardd:\n", "no collector named 'netguardd'"),
    ("listen: 127.0.0.1:9490", "listen: 127.0.0.1:99999", "is not HOST:PORT"),
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


def put_config(client, auth, text: str):  # type: ignore[no-untyped-def]
    etag = client.get("/api/v1/config", headers=auth.headers("root")).headers["ETag"]
    return client.put("/api/v1/config", data=text, headers={**auth.headers("root"), "If-Match": etag})


POLICY = "    policy:\n      mode: observe"
TAGGED = [
    ("      blocklist: []", "      blocklist: !foo [10.0.0.1/8]"),  # a tagged list (crashed line_of: a 500)
    ("      blocklist: []", "      blocklist: [!!str 10.0.0.0/8]"),
    (POLICY, "    policy: !foo\n      mode: observe"),  # a tagged mapping (was silently accepted)
    ("      interfaces: []", "      !foo interfaces: []"),
]


@pytest.mark.parametrize("old, new", TAGGED)
def test_a_tag_in_the_config_is_a_422_with_its_line(client, auth, config_file, old, new):
    before = config_file.read_text()
    text = before.replace(old, new, 1)
    assert text != before
    response = put_config(client, auth, text)
    assert response.status_code == 422 and "tags" in response.json["message"], response.json
    assert response.json["errors"]["line"] == next(i for i, l in enumerate(text.splitlines(), 1) if "!" in l and "#" not in l.split("!")[0])
    assert config_file.read_text() == before


def test_aliases_are_refused_before_they_expand(client, auth, config_file):
    """The billion-laughs shape: each level an alias of the one before, nine times; expanded, 10^9 nodes."""
    before = config_file.read_text()
    bomb = ["x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    bomb += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]" for i in range(1, 10)]
    text = before.replace(POLICY, "    policy:\n      mode: observe\n      " + "\n      ".join(bomb), 1)
    started = time.monotonic()
    response = put_config(client, auth, text)
    assert time.monotonic() - started < 2
    assert response.status_code == 422 and "aliases" in response.json["message"]
    assert response.json["errors"]["line"] == text.splitlines().index("      " + bomb[0]) + 1
    assert config_file.read_text() == before


def test_a_config_broken_by_hand_is_a_409_that_says_where_never_a_500(client, auth, config_file):
    good = config_file.read_text()
    broken = good.replace("      blocklist: []", "      blocklist: !foo [10.0.0.1/8]", 1)
    line = next(i for i, l in enumerate(broken.splitlines(), 1) if "!foo" in l)
    config_file.write_text(broken)
    view = auth.headers("view")
    for path in ("/api/v1/components", "/api/v1/components/syscalls", "/api/v1/sd",
                 "/api/v1/components/netguard/policy", "/api/v1/charts/overview/2"):
        response = client.get(path, headers=view)
        assert response.status_code == 409, (path, response.json)
        assert response.json["errors"]["line"] == line and f"lmp.yaml:{line}" in response.json["message"]
    switched = client.post("/api/v1/components/runqlat/disable", headers=auth.headers("ops"))
    assert switched.status_code == 409 and config_file.read_text() == broken  # no edit on top of a broken file
    assert client.get("/api/v1/config", headers=view).data.decode() == broken  # readable, to be fixed
    assert put_config(client, auth, good).status_code == 204  # an admin fixes it
    assert client.get("/api/v1/sd", headers=view).status_code == 200


def test_yaml_nested_thousands_deep_is_a_422(client, auth, config_file):
    """YAML's builders recurse once per level: 3,000 levels were a RecursionError (found by the fuzzer)."""
    before = config_file.read_text()
    text = before.replace("      blocklist: []", "      blocklist: " + "[" * 3000 + "]" * 3000, 1)
    response = put_config(client, auth, text)
    assert response.status_code == 422 and "levels deep" in response.json["message"], response.json
    assert config_file.read_text() == before


def test_the_web_config_is_changed_by_root_on_the_host_only(client, auth, config_file, tmp_path):
    """TLS and basic auth guard the exporters on the network: an admin token must not be able to drop
    them, or to point them at another file."""
    (tmp_path / "web.yml").write_text("")  # a valid web config: the toolkit's "no TLS, no auth"
    root = auth.headers("root")
    answer = client.get("/api/v1/config", headers=root)
    added = f"web_config: {tmp_path / 'web.yml'}\n" + answer.data.decode()
    put = client.put("/api/v1/config", data=added, headers={**root, "If-Match": answer.headers["ETag"]})
    assert put.status_code == 422 and "only root on the host can change the web config" in put.json["message"]
    assert put.json["errors"]["line"] == 1
    config_file.write_text(added)  # root on the host, by hand
    answer = client.get("/api/v1/config", headers=root)
    removed = answer.data.decode().replace(f"web_config: {tmp_path / 'web.yml'}\n", "")
    put = client.put("/api/v1/config", data=removed, headers={**root, "If-Match": answer.headers["ETag"]})
    assert put.status_code == 422 and put.json["errors"]["line"] is None
    assert config_file.read_text() == added
    kept = answer.data.decode().replace("scrape_interval: 5s", "scrape_interval: 10s")  # other edits still go through
    assert client.put("/api/v1/config", data=kept, headers={**root, "If-Match": answer.headers["ETag"]}).status_code == 204
