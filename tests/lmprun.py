"""`lmp run` as a test drives it: started in its own session, its output read as it comes, its processes
found, its Prometheus queried, its admin API called; shared by the end-to-end and dashboard tests."""
from __future__ import annotations

import json
import os
import queue
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testkit import wait_for  # noqa: F401 (the tests import it from here too)
from tests.conftest import LMP, programs_left, programs_of


def descendants(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    found = {int(p) for p in out.split()}
    return found.union(*(descendants(p) for p in found)) if found else found


def alive(pid: int) -> bool:
    """Running: neither gone nor a zombie (an orphan's exit waits a moment for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def query(port: int, promql: str) -> list[dict]:
    """An instant query's result vector; a query Prometheus refuses raises AssertionError with its error."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)["data"]["result"]
    except urllib.error.HTTPError as err:
        raise AssertionError(f"Prometheus refused {promql!r}: {json.load(err).get('error')}") from None


def up_collectors(port: int) -> set[str]:
    return {r["metric"]["collector"] for r in query(port, 'up{job="lmp"} == 1')}


def active_targets(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets?state=active", timeout=10) as response:
        return {t["labels"]["collector"] for t in json.load(response)["data"]["activeTargets"]}


def serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


class Run:
    """`lmp run` in a new session (so that SIGINT can go to its whole group, as a terminal's Ctrl-C does),
    its output read as it comes."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([*LMP, "--config", str(config), "run"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                     env={**os.environ, **(env or {})})
        self.lines: queue.Queue[str] = queue.Queue()
        self.output = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for_line(self, text: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, f"lmp run exited: {self.output}"
                continue
            self.output += line
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} in: {self.output}")

    def ctrl_c(self) -> str:
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=60)
        time.sleep(0.2)  # the reader thread takes the last lines
        while not self.lines.empty():
            self.output += self.lines.get()
        return self.output


class Api:
    def __init__(self, port: int, username: str, password: str, ca_file: str | None = None) -> None:
        """ca_file: the admin serves HTTPS with this certificate (a web config's)."""
        self.base = f"{'https' if ca_file else 'http'}://127.0.0.1:{port}/api/v1"
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.token = self.call("POST", "/auth/login", {"username": username, "password": password})["access_token"]

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else b"" if method == "POST" else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30, context=self.context) as response:
            return json.load(response)


@dataclass
class Started:
    run: Run
    password: str  # the first admin's, printed once


@contextmanager
def lmp_running(config: Path, collectors: set[str], prometheus_port: int,
                env: dict[str, str] | None = None) -> Iterator[Started]:
    """`lmp run` on `config` (with its admin) until its Prometheus has every collector up; then Ctrl-C, after
    which nothing it started may be left: no process, no BPF program."""
    run = Run(config, env)
    started: set[int] = set()
    try:
        password = run.wait_for_line("log in as admin, password").split("password ")[1].split()[0]
        run.wait_for_line("prometheus", timeout=180)
        wait_for(lambda: up_collectors(prometheus_port) == collectors, timeout=120)
        started = descendants(run.proc.pid)
        yield Started(run, password)
    finally:
        held = set().union(*(programs_of(pid) for pid in started if alive(pid)))
        output = run.ctrl_c()
    assert run.proc.returncode == 0, output
    assert not [pid for pid in started if alive(pid)], "processes left running"
    assert not programs_left(held), "BPF programs left attached"
