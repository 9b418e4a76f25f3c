"""How an exporter is reached and how it ends: its listen address, its URL, its exit codes. Small on
purpose: the CLI, the config, the admin and `lmp run` use it without loading an exporter."""
from __future__ import annotations

import time
from collections.abc import Callable

EXIT_USAGE, EXIT_FAILED, EXIT_UNSUPPORTED = 2, 1, 3  # bad usage or spec; anything else; the kernel lacks a hook


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or :PORT (all addresses) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {listen!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def scrape_url(listen: str, path: str = "/metrics") -> str:
    """Where to reach a listen address from this host: 0.0.0.0 becomes loopback, IPv6 gets brackets."""
    host, port = parse_listen(listen)
    host = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{path}"


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when `url` answers 200 now."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until_serving(url: str, deadline: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """True once `url` answers 200; False if time runs out, or once `alive()` says the server is gone."""
    while time.monotonic() < deadline and alive():
        if answers(url):
            return True
        time.sleep(0.05)
    return False
