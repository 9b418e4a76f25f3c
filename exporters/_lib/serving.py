"""How an exporter is reached and how it ends: its listen address, its URL, its exit codes. Small on
purpose: the CLI, the config, the admin and `lmp run` use it without loading an exporter."""
from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_USAGE, EXIT_FAILED, EXIT_UNSUPPORTED = 2, 1, 3  # bad usage or spec; anything else; the kernel lacks a hook


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or :PORT (all addresses) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {listen!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def scrape_url(listen: str, path: str = "/metrics", tls: bool = False) -> str:
    """Where to reach a listen address from this host: 0.0.0.0 becomes loopback, IPv6 gets brackets."""
    host, port = parse_listen(listen)
    host = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{host}:{port}{path}"


SERVICE_USER = "lmp-service"  # the basic auth user of LMP's own processes (`lmp run`, the admin)
WEB_FILE, PASSWORD_FILE = "web.yml", "service.password"  # in the run directory, written by `lmp run`


@dataclass(frozen=True)
class Reach:
    """How LMP's own processes reach an exporter: plain HTTP, or, with a web config, HTTPS checked against
    its certificate and basic auth as SERVICE_USER."""
    ca_file: str | None = None  # HTTPS when set: the server's certificate, or its CA
    password: str | None = None  # basic auth when set

    @classmethod
    def of_run_dir(cls, run_dir: Path, auth: bool = True) -> Reach:
        """What `lmp run` left in its run directory (nothing: plain HTTP). auth=False: TLS only (the admin
        has logins of its own)."""
        try:
            web = json.loads((run_dir / WEB_FILE).read_text())
        except (OSError, ValueError):
            return cls()
        password = (run_dir / PASSWORD_FILE).read_text().strip() if auth and web.get("basic_auth_users") else None
        return cls(web.get("tls_server_config", {}).get("cert_file"), password)

    def url(self, listen: str, path: str = "/metrics") -> str:
        return scrape_url(listen, path, tls=self.ca_file is not None)

    def open(self, url: str, timeout: float) -> Any:
        """urllib's response, as urlopen gives it (OSError when there is none)."""
        import ssl
        import urllib.request

        headers = {}
        if self.password is not None:
            token = base64.b64encode(f"{SERVICE_USER}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        context = None
        if self.ca_file:
            context = ssl.create_default_context(cafile=self.ca_file)
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the server's own certificate may be the anchor
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout, context=context)


def answers(url: str, timeout: float = 2.0, reach: Reach = Reach()) -> bool:
    """True when `url` answers 200 now."""
    try:
        with reach.open(url, timeout) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until_serving(url: str, deadline: float, alive: Callable[[], bool] = lambda: True,
                       reach: Reach = Reach()) -> bool:
    """True once `url` answers 200; False if time runs out, or once `alive()` says the server is gone."""
    while time.monotonic() < deadline and alive():
        if answers(url, reach=reach):
            return True
        time.sleep(0.05)
    return False
