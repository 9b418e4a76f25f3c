"""Login, refresh, logout: tokens work, wrong passwords do not, revocation survives a restart."""
from __future__ import annotations

import stat
from pathlib import Path

from admin import create_app
from admin.users import SERVICE_USER, first_admin, write_service_token

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


def test_failed_logins_lock_out_that_name_only_and_say_when_to_retry(client):
    codes = [client.post("/api/v1/auth/login", json={"username": "root", "password": "bad"}).status_code
             for _ in range(6)]
    assert codes == [401] * 5 + [429]
    limited = client.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORDS["root"]})
    assert limited.status_code == 429 and limited.is_json  # the right password too, while limited
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    for name in ("ops", "view"):  # other names, from the same address, are not locked out
        assert client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORDS[name]}).status_code == 200
    for _ in range(5):  # successful logins count for nothing
        assert client.post("/api/v1/auth/login", json={"username": "ops", "password": PASSWORDS["ops"]}).status_code == 200


def test_wrong_old_passwords_are_throttled_too(client, auth):
    headers = auth.headers("view")
    codes = [client.put("/api/v1/users/me/password", json={"old_password": f"guess-{i}", "new_password": "another-one-Ahw9qk"},
                        headers=headers).status_code for i in range(6)]
    assert codes == [403] * 5 + [429]


def test_service_token_opens_discovery_is_root_only_and_replaced_at_each_start(app, client, config_file):
    token_file = Path(app.config["DATA_DIR"]) / "service.token"
    with app.app_context():
        write_service_token(token_file)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    first = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    assert client.get("/api/v1/sd", headers=first).status_code == 200
    assert client.get("/api/v1/users", headers=first).status_code == 403  # a viewer, no more
    with app.app_context():
        write_service_token(token_file)  # the next start: a new token, and the old one revoked
    second = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    assert client.get("/api/v1/sd", headers=second).status_code == 200
    assert client.get("/api/v1/sd", headers=first).status_code == 401


def test_deleting_the_service_user_revokes_its_token(app, client, auth):
    token_file = Path(app.config["DATA_DIR"]) / "service.token"
    with app.app_context():
        write_service_token(token_file)
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    assert client.delete(f"/api/v1/users/{SERVICE_USER}", headers=auth.headers("root")).status_code == 204
    assert client.get("/api/v1/sd", headers=headers).status_code == 401


def test_the_first_admin_is_made_when_only_the_service_user_exists(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path)})
    with app.app_context():
        write_service_token(tmp_path / "service.token")
        password = first_admin()
        assert password and first_admin() is None  # once
    response = app.test_client().post("/api/v1/auth/login", json={"username": "admin", "password": password})
    assert response.status_code == 200


def test_unknown_names_take_as_long_as_wrong_passwords(app, client):
    """Names cannot be told by timing: an unknown one is hashed against as a wrong password is."""
    import statistics
    import time
    app.config.update(LOGIN_RATE_LIMIT="1000 per minute", LOGIN_ACCOUNT_RATE_LIMIT="1000 per minute",
                      LOGIN_CLIENT_RATE_LIMIT="1000 per minute")

    def took(name: str) -> float:
        started = time.perf_counter()
        assert client.post("/api/v1/auth/login", json={"username": name, "password": "wrong-pass-Ahw9qk"}).status_code == 401
        return time.perf_counter() - started
    for _ in range(2):  # warm up: the dummy hash is made once
        took("nobody")
        took("root")
    unknown = statistics.median(took(f"nobody{i}") for i in range(9))
    wrong = statistics.median(took("root") for _ in range(9))
    assert 0.7 < unknown / wrong < 1.4, (unknown, wrong)


def test_a_short_jwt_secret_is_refused(tmp_path, monkeypatch):
    import pytest
    monkeypatch.setenv("LMP_JWT_SECRET_KEY", "x" * 31)
    with pytest.raises(ValueError, match="needs 32 or more"):
        create_app({"TESTING": True, "DATA_DIR": str(tmp_path)})
    monkeypatch.setenv("LMP_JWT_SECRET_KEY", "x" * 32)
    assert create_app({"TESTING": True, "DATA_DIR": str(tmp_path)}).config["JWT_SECRET_KEY"] == "x" * 32
