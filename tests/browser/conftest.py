"""The web page in a real browser: Debian's chromium, driven by Playwright (never a browser download),
against `lmp run` with the admin, its exporters and Prometheus, on a temporary config and data directory.
Screenshots of every page go to artifacts/browser/."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.conftest import ROOT, free_ports
from tests.lmprun import Api, lmp_running

CHROMIUM = "/usr/bin/chromium"
# As root, in a closed network: no sandbox, and nothing that phones home (see the machine notes).
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
COLLECTORS = ("syscalls", "runqlat", "biolatency", "offcpu", "tcp", "pagefault", "oomkill", "process", "skbdrop")
PASSWORDS = {"ops": "operator-password", "view": "viewer-password"}
ARTIFACTS = ROOT / "artifacts" / "browser"


@dataclass
class Stack:
    base: str
    config: Path
    ports: dict[str, int]
    passwords: dict[str, str] = field(default_factory=dict)
    api: Api | None = None


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    folder = Path(tempfile.mkdtemp(dir=ROOT, prefix=".lmp-test-browser-"))
    ports = free_ports((*COLLECTORS, "prometheus", "admin"))
    lines = ["disable_defaults: true", "prometheus:", f"  listen: 127.0.0.1:{ports['prometheus']}", "  scrape_interval: 1s",
             f"  data_dir: {folder / 'prometheus'}", "admin:", f"  listen: 127.0.0.1:{ports['admin']}",
             f"  data_dir: {folder / 'data'}", f"  run_dir: {folder / 'run'}",
             "  scenario_commands: true", "collectors:"]  # a test starts a command from the page
    for name in COLLECTORS:
        lines += [f"  {name}:", "    enabled: true", f"    listen: 127.0.0.1:{ports[name]}"]
    config = folder / "lmp.yaml"
    config.write_text("\n".join(lines) + "\n")
    try:
        with lmp_running(config, set(COLLECTORS), ports["prometheus"],  # every test logs in:
                         env={"LMP_ADMIN_LOGIN_RATE_LIMIT": "1000 per minute"}) as started:
            s = Stack(f"http://127.0.0.1:{ports['admin']}", config, ports, {"admin": started.password, **PASSWORDS})
            s.api = Api(ports["admin"], "admin", started.password)
            for name, role in (("ops", "operator"), ("view", "viewer")):
                s.api.call("POST", "/users", {"name": name, "password": PASSWORDS[name], "role": role})
            yield s
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class Tab:
    """A page with its console watched: every error or warning, and every uncaught exception, is kept."""

    def __init__(self, page: Page, stack: Stack, name: str) -> None:
        self.page, self.stack, self.name = page, stack, name
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.problems.append(f"{page.url}: uncaught {err}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"{self.page.url}: {message.type}: {message.text}")

    def go(self, path: str) -> Page:
        self.page.goto(self.stack.base + path)
        return self.page

    def login(self, user: str, password: str | None = None) -> Page:
        self.go("/login")
        self.page.get_by_label("User name").fill(user)
        self.page.get_by_label("Password").fill(password or self.stack.passwords[user])
        self.page.get_by_role("button", name="Log in").click()
        return self.page

    def shot(self, label: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{label}.png"), full_page=True)


@pytest.fixture
def tab(browser: Browser, stack: Stack, request: pytest.FixtureRequest) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20000)
    t = Tab(page, stack, request.node.name)
    yield t
    context.close()
