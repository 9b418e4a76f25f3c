"""flaskr-style fixtures: an app on a temporary data directory, its test client, and a login helper."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from admin import create_app
from admin.models import db
from admin.scenario_runs import stop_all
from admin.throttle import limiter
from admin.users import create
from exporters._lib import paths

PASSWORDS = {"root": "root-pass-Ahw9qk", "ops": "ops-pass-Ahw9qk", "view": "view-pass-Ahw9qk"}
# Scenario runs started through the API in these tests use a stand-in recorder: no BPF, no real command.
FAKE_RECORDER = [sys.executable, str(Path(__file__).with_name("fake_recorder.py"))]
ROLE_OF = {"root": "admin", "ops": "operator", "view": "viewer"}


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.delenv("LMP_JWT_SECRET_KEY", raising=False)
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "SCENARIO_COMMAND": FAKE_RECORDER,
                      "SCENARIO_MAX_RUNNING": 100, "SCENARIO_COMMANDS": True})
    limiter.reset()  # one limiter per process: forget earlier tests' login attempts
    with app.app_context():
        for name, password in PASSWORDS.items():
            create(name, password, ROLE_OF[name])
    yield app
    stop_all()  # scenario stand-ins still waiting for their duration
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def config_file(app, tmp_path):
    """A copy of the shipped config/lmp.yaml that this app reads and writes."""
    path = tmp_path / "lmp.yaml"
    shutil.copy(paths.DEFAULT_CONFIG, path)
    app.config["LMP_CONFIG"] = str(path)
    return path


class Auth:
    def __init__(self, client) -> None:
        self.client = client

    def tokens(self, name: str) -> dict:
        response = self.client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORDS[name]})
        assert response.status_code == 200, response.json
        return response.json

    def headers(self, name: str) -> dict:
        return {"Authorization": f"Bearer {self.tokens(name)['access_token']}"}


@pytest.fixture
def auth(client):
    return Auth(client)
