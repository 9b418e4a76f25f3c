"""Real exporters behind a web config (TLS and basic auth): curl with the right credentials gets the
metrics, wrong ones get 401, plain HTTP gets nothing; idle connections do not starve a scrape; a request
that never ends is dropped after the read timeout; connguard's /events needs the same auth, and without
a web config answers loopback only."""
from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from exporters._lib.httpserver import READ_TIMEOUT
from exporters._lib.serving import SERVICE_USER, Reach
from tests.conftest import make_cert
from tests.exporters.test_connguard import write_config

SCRAPER, SCRAPER_PASSWORD, SERVICE_PASSWORD = "prometheus", "scrape-password-1", "service-password-1"


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()


@pytest.fixture
def web(tmp_path: Path) -> tuple[Path, Reach]:
    """A web config with TLS and two users, and how the tests reach an exporter that uses it."""
    cert, _ = make_cert(tmp_path)
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n"
                    f"  {SCRAPER}: {hashed(SCRAPER_PASSWORD)}\n  {SERVICE_USER}: {hashed(SERVICE_PASSWORD)}\n")
    return path, Reach(str(cert), SERVICE_PASSWORD)


def curl(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", "-D", "-", *args, url], capture_output=True, text=True)


def test_tls_and_basic_auth(exporter, web):
    path, reach = web
    ex = exporter("syscalls", "--web-config", str(path), reach=reach)
    cert = ["--cacert", str(reach.ca_file)]
    good = curl(ex.url, *cert, "-u", f"{SCRAPER}:{SCRAPER_PASSWORD}")
    assert good.stdout.startswith("HTTP/1.1 200") and "\nlmp_syscalls_total{" in good.stdout, good
    for user in ([], ["-u", f"{SCRAPER}:wrong"], ["-u", f"nobody:{SCRAPER_PASSWORD}"]):
        refused = curl(ex.url, *cert, *user)
        assert refused.stdout.startswith("HTTP/1.1 401"), refused
        assert 'WWW-Authenticate: Basic realm="lmp"' in refused.stdout and "lmp_" not in refused.stdout
    plain = curl(ex.url.replace("https://", "http://"), "-u", f"{SCRAPER}:{SCRAPER_PASSWORD}")
    assert plain.returncode != 0 and "HTTP/" not in plain.stdout, plain  # no answer over plain HTTP
    unverified = curl(ex.url, "-u", f"{SCRAPER}:{SCRAPER_PASSWORD}")  # the system's CAs do not know it
    assert unverified.returncode == 60, unverified
    assert "lmp_syscalls_total" in ex.text()  # lmp-service, as `lmp run` and the admin reach it


def test_idle_connections_do_not_starve_a_scrape(exporter, web):
    path, reach = web
    ex = exporter("syscalls", "--web-config", str(path), reach=reach)
    idle = [socket.create_connection(("127.0.0.1", ex.port)) for _ in range(50)]  # connected, silent
    try:
        time.sleep(0.5)  # every one of them accepted by now
        for _ in range(3):
            started = time.monotonic()
            assert "lmp_syscalls_total" in ex.text()
            assert time.monotonic() - started < 2.0, "a scrape waited behind idle connections"
        time.sleep(READ_TIMEOUT + 1.5)  # the server closes connections that said nothing for its timeout
        closed = 0
        for s in idle:
            s.settimeout(2)
            closed += s.recv(1) == b""
        assert closed == len(idle)
    finally:
        for s in idle:
            s.close()


def test_a_partial_request_is_dropped_after_the_read_timeout(exporter, web):
    path, reach = web
    ex = exporter("syscalls", "--web-config", str(path), reach=reach)
    context = ssl.create_default_context(cafile=reach.ca_file)
    with context.wrap_socket(socket.create_connection(("127.0.0.1", ex.port)), server_hostname="127.0.0.1") as slow:
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the blank line that ends it never comes
        started = time.monotonic()
        assert "lmp_syscalls_total" in ex.text()  # others are served meanwhile
        slow.settimeout(READ_TIMEOUT + 5)
        answer = slow.recv(4096)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert READ_TIMEOUT - 0.5 < waited < READ_TIMEOUT + 2, waited


def events_status(port: int, host: str = "127.0.0.1", reach: Reach = Reach()) -> int:
    url = reach.url(f"{host}:{port}", "/events?after=0")
    try:
        with reach.open(url, 10) as response:
            assert "events" in json.load(response)
            return response.status
    except OSError as err:
        return getattr(err, "code", 0)


def test_connguard_events_need_the_same_auth(exporter, cgroup, web, tmp_path):
    path, reach = web
    guard = exporter("connguard", "--web-config", str(path), config=write_config(tmp_path / "lmp.yaml", cgroup[1]),
                     reach=reach)
    assert events_status(guard.port, reach=reach) == 200
    assert events_status(guard.port, reach=Reach(reach.ca_file)) == 401
    assert events_status(guard.port, reach=Reach(reach.ca_file, "wrong")) == 401


@pytest.fixture
def outside_address() -> Iterator[str]:
    """A local address outside 127.0.0.0/8 (TEST-NET-2, given to lo for the test): a client from there is
    not loopback to the exporter, as a fleet's Prometheus would not be."""
    address = f"198.51.100.{os.getpid() % 250 + 1}"
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    try:
        yield address
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=True)


def test_connguard_events_without_auth_answer_loopback_only(exporter, cgroup, tmp_path, outside_address):
    guard = exporter("connguard", config=write_config(tmp_path / "lmp.yaml", cgroup[1]), host="0.0.0.0")
    assert events_status(guard.port) == 200  # the admin, on this host
    assert events_status(guard.port, outside_address) == 403
    assert "lmp_connguard" in curl(f"http://{outside_address}:{guard.port}/metrics").stdout  # /metrics stays open
