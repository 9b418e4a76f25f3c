"""Real servers from Debian for the l7 collector's tests and its panel workload, each started on a loopback
port of its own (in a temporary directory) and stopped by its PID: nginx (plain and TLS, with a slow
upstream), redis-server, dnsmasq and PostgreSQL."""
from __future__ import annotations

import http.server
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testkit import free_port

SLOW_SECONDS = 0.3  # the slow upstream's answer time: between 2^28 and 2^29 ns


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args[0]} exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{proc.args[0]} did not listen on {port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        time.sleep(SLOW_SECONDS)
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"slow\n")

    def log_message(self, *args: object) -> None:
        pass


NGINX = """daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  server {{
    listen 127.0.0.1:{port};
    {tls}
    location /ok {{ return 200 "ok\\n"; }}
    location /missing {{ return 404; }}
    location /fail {{ return 500; }}
    location /slow {{ proxy_pass http://127.0.0.1:{slow}; }}
  }}
}}
"""


@contextmanager
def nginx(tmp: Path, tls: bool = False) -> Iterator[int]:
    """nginx on a free loopback port: /ok answers 200, /missing 404, /fail 500, /slow 200 after SLOW_SECONDS
    (from an upstream in this process); with tls, over HTTPS with a certificate made here."""
    slow = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    port, directive = free_port(), ""
    if tls:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                        "-keyout", str(tmp / "key.pem"), "-out", str(tmp / "cert.pem")], check=True, capture_output=True)
        directive = f"ssl_certificate {tmp}/cert.pem; ssl_certificate_key {tmp}/key.pem;"
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX.format(dir=tmp, port=f"{port} ssl" if tls else port, tls=directive, slow=slow.server_port))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-e", str(tmp / "error.log")])
    try:
        wait_port(port, proc)
        yield port
    finally:
        stop(proc)
        slow.shutdown()
        slow.server_close()


@contextmanager
def redis(tmp: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield port
    finally:
        stop(proc)


def udp_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dnsmasq(tmp: Path) -> Iterator[int]:
    """dnsmasq answering for *.lmp.test on loopback, UDP and TCP: found.lmp.test resolves, any other name
    under lmp.test does not exist (NXDOMAIN); no upstream is asked."""
    port = udp_free_port()
    proc = subprocess.Popen(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                             f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces",
                             "--local=/lmp.test/", "--address=/found.lmp.test/127.0.0.9", f"--pid-file={tmp}/dnsmasq.pid",
                             "--user=root"], stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield port
    finally:
        stop(proc)


def postgres_bin() -> Path:
    return max(Path("/usr/lib/postgresql").glob("*/bin"))


@contextmanager
def postgres(tmp: Path, log: Path | None = None) -> Iterator[int]:
    """A PostgreSQL cluster made in tmp (initdb, trust authentication), listening on loopback only; run as
    the postgres user, which the server requires. With log, every statement a client sends is written
    there (log_statement=all): the server's own account of what it was asked."""
    tmp = Path(tempfile.mkdtemp(prefix="lmp-test-pg-"))  # pytest's own are private to root
    os.chmod(tmp, 0o755)
    shutil.chown(tmp, "postgres")
    data, port = tmp / "pgdata", free_port()
    as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
    subprocess.run([*as_postgres, str(postgres_bin() / "initdb"), "-A", "trust", "-U", "postgres", "-D", str(data)],
                   check=True, capture_output=True)
    logging = ["-c", "log_statement=all"] if log else []
    stderr = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen([*as_postgres, str(postgres_bin() / "postgres"), "-D", str(data), "-p", str(port),
                             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={tmp}", *logging],
                            stderr=stderr)
    try:
        wait_port(port, proc)
        yield port
    finally:
        stop(proc)
        if log:
            stderr.close()  # type: ignore[union-attr]
        shutil.rmtree(tmp, ignore_errors=True)
