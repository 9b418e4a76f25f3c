"""Login, refresh, logout: tokens work, wrong passwords do not, revocation survives a restart."""
from __future__ import annotations

import stat
from pathlib import Path

from admin import create_app

from .conftest import PASSWORDS


def test_login_gives_tokens_that_open_the_api(client, auth):
    headers = auth.headers("view")
    assert client.get("/api/v1/components", headers=headers).status_code == 200


def test_wrong_password_is_401_json(client):
    response = client.post("/api/v1/auth/login", json={"username": "root", "password": "nope"})
    assert response.status_code == 401
    assert response.json["message"] == "wrong user name or password"


def test_refresh_gives_a_new_access_token(client, auth):
    refresh = auth.tokens("ops")["refresh_token"]
    response = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {refresh}"})
    assert response.status_code == 200
    new = {"Authorization": f"Bearer {response.json['access_token']}"}
    assert client.get("/api/v1/components", headers=new).status_code == 200


def test_logout_revokes_the_token_even_after_a_restart(app, client, auth):
    headers = auth.headers("view")
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    refused = client.get("/api/v1/components", headers=headers)
    assert refused.status_code == 401 and "revoked" in refused.json["message"]
    again = create_app({"TESTING": True, "DATA_DIR": app.config["DATA_DIR"]}).test_client()
    assert again.get("/api/v1/components", headers=headers).status_code == 401


def test_signing_key_is_made_once_and_readable_by_root_only(app):
    key = Path(app.config["DATA_DIR"]) / "jwt.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert create_app({"TESTING": True, "DATA_DIR": app.config["DATA_DIR"]}).config["JWT_SECRET_KEY"] == key.read_text()


def test_login_attempts_are_rate_limited(client):
    codes = [client.post("/api/v1/auth/login", json={"username": "root", "password": "bad"}).status_code
             for _ in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429
    assert PASSWORDS  # the right password is refused too while limited:
    assert client.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORDS["root"]}).status_code == 429
