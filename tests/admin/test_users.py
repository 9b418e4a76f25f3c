"""Accounts and their tokens: a token belongs to the account (not to its name) and to its credentials
version, so a new password, a new role, a delete or a logout from everywhere ends every older token; the
same rules for names and passwords in the API and the host's CLI; no self-delete."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import LMP

from .conftest import PASSWORDS
from .served import service, together  # noqa: F401 - service: a fixture


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_new_account_of_a_deleted_name_gets_none_of_its_tokens(client, auth):
    root = auth.headers("root")
    assert client.post("/api/v1/users", json={"name": "alice", "password": "alice-pass-Ahw9qk", "role": "viewer"},
                       headers=root).status_code == 201
    old = client.post("/api/v1/auth/login", json={"username": "alice", "password": "alice-pass-Ahw9qk"}).json
    assert client.delete("/api/v1/users/alice", headers=root).status_code == 204
    assert client.post("/api/v1/users", json={"name": "alice", "password": "alice-new-Ahw9qk", "role": "admin"},
                       headers=root).status_code == 201
    for token in (old["access_token"], old["refresh_token"]):
        assert client.get("/api/v1/users", headers=bearer(token)).status_code == 401
    assert client.post("/api/v1/auth/refresh", headers=bearer(old["refresh_token"])).status_code == 401


def test_a_password_change_through_the_api_ends_every_older_token(client, auth):
    first, second = auth.tokens("view"), auth.tokens("view")  # two sessions
    changed = client.put("/api/v1/users/me/password", headers=bearer(first["access_token"]),
                         json={"old_password": PASSWORDS["view"], "new_password": "view-new-Ahw9qk"})
    assert changed.status_code == 200
    for token in (first["access_token"], first["refresh_token"], second["access_token"], second["refresh_token"]):
        assert client.get("/api/v1/users/me", headers=bearer(token)).status_code == 401
    assert client.post("/api/v1/auth/refresh", headers=bearer(second["refresh_token"])).status_code == 401
    assert client.get("/api/v1/users/me", headers=bearer(changed.json["access_token"])).status_code == 200


def test_set_password_on_the_host_ends_every_older_token(client, auth, app):
    tokens = auth.tokens("ops")
    result = subprocess.run([*LMP, "admin", "set-password", "ops", "--password-stdin", "--data-dir",
                             app.config["DATA_DIR"]], input="ops-new-pass-Ahw9qk\n", capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    for token in tokens.values():
        assert client.get("/api/v1/users/me", headers=bearer(token)).status_code == 401
    assert client.post("/api/v1/auth/login", json={"username": "ops", "password": "ops-new-pass-Ahw9qk"}).status_code == 200


def test_a_role_change_ends_the_users_tokens(client, auth):
    tokens = auth.tokens("ops")
    assert client.patch("/api/v1/users/ops", json={"role": "viewer"}, headers=auth.headers("root")).status_code == 200
    for token in tokens.values():
        assert client.get("/api/v1/users/me", headers=bearer(token)).status_code == 401
    assert client.get("/api/v1/users/me", headers=auth.headers("ops")).json["role"] == "viewer"


def test_logout_everywhere_ends_every_token_of_that_user_only(client, auth):
    mine, also_mine, theirs = auth.tokens("view"), auth.tokens("view"), auth.tokens("ops")
    assert client.post("/api/v1/auth/logout-all", headers=bearer(mine["refresh_token"])).status_code == 204
    for token in (*mine.values(), *also_mine.values()):
        assert client.get("/api/v1/users/me", headers=bearer(token)).status_code == 401
    assert client.get("/api/v1/users/me", headers=bearer(theirs["access_token"])).status_code == 200
    events = client.get("/api/v1/audit", headers=auth.headers("root")).json
    assert ("view", "logout everywhere") in [(e["actor"], e["action"]) for e in events]


def test_self_delete_is_a_clear_409_and_deletes_nothing(client, auth):
    root = auth.headers("root")
    assert client.post("/api/v1/users", json={"name": "second", "password": "second-pass-Ahw9qk", "role": "admin"},
                       headers=root).status_code == 201
    answer = client.delete("/api/v1/users/root", headers=root)
    assert answer.status_code == 409 and "your own account" in answer.json["message"]
    assert client.get("/api/v1/users/me", headers=root).json["name"] == "root"


@pytest.mark.parametrize("password, reason", [
    ("short-Ahw9", "at least 12 characters"),
    ("password1234", "easy to guess"),  # a leaked password with digits after it
    ("qwertyuiop123", "easy to guess"),
    ("123qweasdzxc", "easy to guess"),  # in the leaked list as it is
    ("aaaaaaaaaaaaaaaa", "easy to guess"),
    ("password" * 30, "easy to guess"),  # longer than zxcvbn reads (72): judged by what it can read
])
def test_short_or_leaked_passwords_are_refused_in_the_api_and_on_the_host(client, auth, app, password, reason):
    created = client.post("/api/v1/users", json={"name": "bob", "password": password, "role": "viewer"},
                          headers=auth.headers("root"))
    assert created.status_code == 422 and reason in str(created.json)
    changed = client.put("/api/v1/users/me/password", json={"old_password": PASSWORDS["view"], "new_password": password},
                         headers=auth.headers("view"))
    assert changed.status_code == 422 and reason in str(changed.json)
    cli = subprocess.run([*LMP, "admin", "create-user", "bob", "--password-stdin", "--data-dir", app.config["DATA_DIR"]],
                         input=password + "\n", capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2 and reason in cli.stderr


@pytest.mark.parametrize("name", ["../scenarios/1", "Admin", "a b", "x" * 65, "1digit", "x/y"])
def test_the_cli_refuses_the_names_the_api_refuses(client, auth, app, name):
    api = client.post("/api/v1/users", json={"name": name, "password": "fine-pass-Ahw9qk", "role": "viewer"},
                      headers=auth.headers("root"))
    assert api.status_code == 422
    cli = subprocess.run([*LMP, "admin", "create-user", name, "--password-stdin", "--data-dir", app.config["DATA_DIR"]],
                         input="fine-pass-Ahw9qk\n", capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2 and "is not a user name" in cli.stderr, cli.stderr
    names = [u["name"] for u in client.get("/api/v1/users", headers=auth.headers("root")).json]
    assert name not in names


def test_a_long_strong_password_is_taken(client, auth):
    """Up to MAX_LENGTH (256) characters: zxcvbn refuses to read past 72, which was a 500."""
    password = "correct-horse-battery-staple-" * 8
    created = client.post("/api/v1/users", json={"name": "bob", "password": password, "role": "viewer"},
                          headers=auth.headers("root"))
    assert created.status_code == 201, created.json
    assert client.post("/api/v1/auth/login", json={"username": "bob", "password": password}).status_code == 200


def test_two_admins_demoting_or_deleting_each_other_always_leave_an_admin(service):
    root = service.login("root")
    assert service.call("POST", "/api/v1/users", root, {"name": "root2", "password": "root2-pass-Ahw9qk",
                                                        "role": "admin"}).status == 201
    passwords = {"root": PASSWORDS["root"], "root2": "root2-pass-Ahw9qk"}
    for n in range(12):
        tokens = {name: service.login(name, password) for name, password in passwords.items()}
        if n % 2:
            work = [lambda: service.call("PATCH", "/api/v1/users/root2", tokens["root"], {"role": "viewer"}),
                    lambda: service.call("PATCH", "/api/v1/users/root", tokens["root2"], {"role": "viewer"})]
        else:
            work = [lambda: service.call("DELETE", "/api/v1/users/root2", tokens["root"]),
                    lambda: service.call("DELETE", "/api/v1/users/root", tokens["root2"])]
        answers = together(work)
        assert sorted(a.status < 300 for a in answers) == [False, True], [(a.status, a.body) for a in answers]
        assert all(a.status in (200, 204, 401, 409) for a in answers), [(a.status, a.body) for a in answers]
        survivor = ["root", "root2"][[a.status < 300 for a in answers].index(True)]
        other = "root2" if survivor == "root" else "root"
        token = service.login(survivor, passwords[survivor])
        users = {u["name"]: u["role"] for u in service.call("GET", "/api/v1/users", token).body}
        assert users[survivor] == "admin"
        if other in users:  # demoted: made admin again for the next round
            assert service.call("PATCH", f"/api/v1/users/{other}", token, {"role": "admin"}).status == 200
        else:  # deleted: made again
            assert service.call("POST", "/api/v1/users", token, {"name": other, "password": passwords[other],
                                                                 "role": "admin"}).status == 201
