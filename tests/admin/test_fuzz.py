"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis): whatever the
request, no 5xx, and every answer matches the documented schema. Runs as an admin, so that requests get
past authentication and reach the handlers. Then its stateful phase: sequences of calls chained by the
links schemathesis infers (a user created, then read, changed and deleted; a scenario started, then
polled, stopped and deleted), each sequence from the same users."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from admin import create_app
from admin.models import ScenarioRun, User, db
from admin.scenario_runs import stop_all
from admin.throttle import limiter
from admin.users import create
from exporters._lib import paths

from .conftest import FAKE_RECORDER, PASSWORDS, ROLE_OF

DATA = Path(tempfile.mkdtemp(prefix="lmp-admin-fuzz-"))  # made at import: schemathesis needs the app then


@pytest.fixture(scope="module", autouse=True)
def remove_data():  # type: ignore[no-untyped-def]
    yield
    stop_all()  # scenario stand-ins the fuzzer started
    shutil.rmtree(DATA, ignore_errors=True)


def reset_users(app) -> None:  # type: ignore[no-untyped-def]
    """The test users as conftest has them, whatever a sequence did to them (deleted, demoted)."""
    with app.app_context():
        for name, password in PASSWORDS.items():
            user = db.session.scalar(db.select(User).filter_by(name=name))
            if user is None:
                create(name, password, ROLE_OF[name])
            elif user.role != ROLE_OF[name]:
                user.role = ROLE_OF[name]
                db.session.commit()
        db.session.remove()


def build_app():  # type: ignore[no-untyped-def]
    config = DATA / "lmp.yaml"
    shutil.copy(paths.DEFAULT_CONFIG, config)
    app = create_app({"TESTING": True, "DATA_DIR": str(DATA), "LMP_CONFIG": str(config),
                      "LOGIN_RATE_LIMIT": "100000 per minute", "LOGIN_ACCOUNT_RATE_LIMIT": "100000 per minute",
                      "LOGIN_CLIENT_RATE_LIMIT": "100000 per minute", "PASSWORD_CHANGE_RATE_LIMIT": "100000 per minute",
                      "SCENARIO_COMMANDS": True,
                      "SCENARIO_COMMAND": FAKE_RECORDER})  # scenarios it starts load nothing and end at once
    reset_users(app)
    return app


APP = build_app()
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", APP)


def admin_token() -> str:
    client = APP.test_client()
    return client.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORDS["root"]}).json["access_token"]


TOKEN = admin_token()


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_5xx(case):
    if case.path in ("/api/v1/auth/logout", "/api/v1/users/{name}"):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {admin_token()}"}  # may be revoked/deleted
    else:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}
    if case.path == "/api/v1/charts/{name}/{chart}":
        # Its data comes from the local Prometheus, which does not run here: a documented 503, never a 500.
        response = case.call_and_validate(checks=[schemathesis.checks.response_schema_conformance])
        assert response.status_code != 500
        return
    case.call_and_validate(checks=[schemathesis.checks.not_a_server_error, schemathesis.checks.response_schema_conformance])


def reset(app) -> None:  # type: ignore[no-untyped-def]
    """Every sequence starts from the same state, so that hypothesis can replay one: the shipped config,
    the test users alone, no scenario runs, no failed logins counted."""
    stop_all()
    shutil.copy(paths.DEFAULT_CONFIG, app.config["LMP_CONFIG"])
    with app.app_context():
        db.session.execute(db.delete(ScenarioRun))
        db.session.execute(db.delete(User).where(User.name.not_in(list(PASSWORDS))))
        db.session.commit()
        db.session.remove()
    shutil.rmtree(DATA / "scenarios", ignore_errors=True)
    limiter.reset()
    reset_users(app)


class Sequences(schema.as_state_machine()):  # type: ignore[misc]
    def setup(self) -> None:
        reset(APP)

    def get_call_kwargs(self, case) -> dict:  # type: ignore[no-untyped-def]
        # A fresh token for every call: an earlier step may have ended the last one (logout, logout-all).
        return {"headers": {"Authorization": f"Bearer {admin_token()}"}}

    def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        checks = [schemathesis.checks.response_schema_conformance]
        if case.path != "/api/v1/charts/{name}/{chart}":  # its documented 503: no Prometheus runs here
            checks.append(schemathesis.checks.not_a_server_error)
        case.validate_response(response, checks=checks)
        assert response.status_code != 500, (case.method, case.path, response.text[:300])


TestSequences = Sequences.TestCase
TestSequences.settings = settings(max_examples=60, stateful_step_count=8, deadline=None,
                                  suppress_health_check=list(HealthCheck))
