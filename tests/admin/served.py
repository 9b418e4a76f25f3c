"""A real `lmp admin serve` for the tests that need real HTTP and real concurrency: started on a free
loopback port over a temporary config and data directory, with users made beforehand, stopped by its PID.
`together()` releases threads at a barrier, so that their requests reach the service at the same moment."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from admin import create_app
from admin.models import db
from admin.users import create
from exporters._lib import paths
from tests.conftest import LMP, free_port

from .conftest import FAKE_RECORDER, PASSWORDS, ROLE_OF

T = TypeVar("T")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any  # JSON when it is JSON, else text


@dataclass
class Service:
    port: int
    config: Path
    data_dir: Path
    proc: subprocess.Popen

    def call(self, method: str, path: str, token: str | None = None, json_body: Any = None,
             data: bytes | str | None = None, headers: dict[str, str] | None = None) -> Answer:
        head = dict(headers or {})
        if token:
            head["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data, head["Content-Type"] = json.dumps(json_body), "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=data.encode() if isinstance(data, str) else data, headers=head)
            response = conn.getresponse()
            raw = response.read()
            kind = response.getheader("Content-Type", "")
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                          json.loads(raw) if "json" in kind and raw else raw.decode(errors="replace"))
        finally:
            conn.close()

    def login(self, name: str, password: str | None = None) -> str:
        answer = self.call("POST", "/api/v1/auth/login", json_body={"username": name,
                                                                   "password": password or PASSWORDS[name]})
        assert answer.status == 200, answer.body
        return answer.body["access_token"]


@contextmanager
def serving(folder: Path, env: dict[str, str] | None = None, config_text: str | None = None) -> Iterator[Service]:
    """`lmp admin serve` (no supervisor: nothing here loads BPF) with the users of conftest.PASSWORDS."""
    data_dir, config = folder / "data", folder / "lmp.yaml"
    if config_text is None:
        shutil.copy(paths.DEFAULT_CONFIG, config)
    else:
        config.write_text(config_text)
    app = create_app({"DATA_DIR": str(data_dir), "LMP_CONFIG": str(config)})
    with app.app_context():
        for name, password in PASSWORDS.items():
            create(name, password, ROLE_OF[name])
        db.engine.dispose()
    port = free_port()
    proc = subprocess.Popen([*LMP, "--config", str(config), "admin", "serve", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(data_dir)], env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    service = Service(port, config, data_dir, proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if service.call("GET", "/api/v1/health").status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, f"the admin did not start: {proc.stderr.read()}"
            time.sleep(0.1)
        yield service
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def together(work: list[Callable[[], T]]) -> list[T]:
    """Run each function in its own thread, all released at once by a barrier; their results, in order."""
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work[i]()
        except Exception as err:  # noqa: BLE001 - reported below, as a result the test can show
            results[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    return results


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """A served admin whose scenario runs use the stand-in recorder, at most two at once."""
    env = {"LMP_ADMIN_SCENARIO_COMMAND": json.dumps(FAKE_RECORDER), "LMP_ADMIN_SCENARIO_MAX_RUNNING": "2",
           "LMP_ADMIN_LOGIN_RATE_LIMIT": "1000 per minute"}  # the tests log in often
    with serving(tmp_path, env=env) as s:
        yield s
