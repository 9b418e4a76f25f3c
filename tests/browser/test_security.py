"""The admin's pages in chromium, against `lmp admin serve` alone (no exporters, no BPF): every page sends
its security headers and breaks none of its own policy, no other origin can frame it, the login's `next`
never leads off the site, and the users page encodes names in the URLs it builds."""
from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from admin import create_app
from admin.models import ScenarioRun, User, db
from tests.admin.conftest import PASSWORDS
from tests.admin.served import Service, serving

PAGES = ["/login", "/", "/components", "/components/runqlat", "/config", "/users", "/audit", "/scenarios",
         "/scenarios/1", "/docs/runbook", "/api/docs"]
# Another origin, on loopback: the same address family, another host (127.0.0.2 is this machine too).
OTHER_HOST = "127.0.0.2"
WATCH_POLICY = """window.__violations = [];
document.addEventListener('securitypolicyviolation',
    (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));"""


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("admin")
    with serving(folder) as service:
        app = create_app({"DATA_DIR": str(service.data_dir), "LMP_CONFIG": str(service.config)})
        with app.app_context():  # as an earlier LMP let the CLI make it: a name that is a path
            db.session.add(User(name="../scenarios/1", password_hash="x", role="viewer"))
            db.session.add(ScenarioRun(kind="run", target='["dd"]', options='{"duration": 1}', owner="root",
                                       status="complete"))
            db.session.commit()
            db.engine.dispose()
        write_report(service.data_dir / "scenarios" / "1")
        yield service


def write_report(folder: Path) -> None:
    """Scenario 1's results as `lmp scenario` writes them: its breakdown and its report (the report's inline
    script and style are what the scenario page's policy allows by hash)."""
    from collections import Counter

    from scenario import flame, report
    parts = {k: 0.05 for k in ("on_cpu_user", "on_cpu_kernel", "sleeping", "uninterruptible", "other",
                               "preempted", "runqueue")}
    breakdown = {"reference": "wall_seconds", "wall_seconds": 0.35, "thread_seconds": 0.35, "threads": 1,
                 "parts": parts, "accounted_seconds": 0.35, "accounted_vs_reference": 0.0,
                 "syscalls": [{"name": "write", "count": 3, "errors": 0, "seconds": 0.01}],
                 "events": {"syscall": {"made": 3, "lost": 0}}}
    folder.mkdir(parents=True)
    (folder / "breakdown.json").write_text(json.dumps(breakdown))
    (folder / "run.json").write_text(json.dumps({"mode": "run", "ended_by": "exit"}))
    meta = {"command": ["dd"], "pid": 1, "mode": "run", "ended_by": "exit", "exit_code": 0}
    stacks = flame.tree(Counter({"dd;main;write": 3, "dd;main;read": 1}))
    report.write(folder / "report.html", "dd", meta, breakdown, stacks, stacks, [], False, {1: "dd"})


@pytest.fixture(scope="module")
def other_origin() -> Iterator[str]:
    """A page on another origin that frames the admin's pages given in ?src=."""
    class Framer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            src = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("src", [""])[0]
            body = f'<!doctype html><title>framer</title><iframe id="f" src="{src}"></iframe>'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((OTHER_HOST, 0), Framer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{OTHER_HOST}:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def page(browser: Browser, admin: Service) -> Iterator[Page]:
    """A tab that may talk to this admin only (and to the origins a test adds to page.allowed): any request
    elsewhere is refused, and kept to be checked."""
    context = browser.new_context()
    allowed = [f"http://127.0.0.1:{admin.port}/", "data:", "blob:", "about:"]
    elsewhere: list[str] = []

    def only_here(route, request) -> None:  # type: ignore[no-untyped-def]
        if request.url.startswith(tuple(allowed)):
            route.continue_()
        else:
            elsewhere.append(request.url)
            route.abort()
    context.route("**/*", only_here)
    tab = context.new_page()
    tab.set_default_timeout(20000)
    tab.elsewhere, tab.allowed = elsewhere, allowed  # type: ignore[attr-defined]
    yield tab
    context.close()


def base(admin: Service) -> str:
    return f"http://127.0.0.1:{admin.port}"


def log_in(page: Page, admin: Service, user: str = "root", next_: str | None = None) -> None:
    query = f"?next={urllib.parse.quote(next_, safe='')}" if next_ is not None else ""
    page.goto(base(admin) + "/login" + query)
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Log in").click()


def test_every_page_sends_its_headers_and_breaks_none_of_its_policy(page, admin):
    page.add_init_script(WATCH_POLICY)
    log_in(page, admin)
    page.wait_for_url(base(admin) + "/")
    for path in PAGES:
        response = page.goto(base(admin) + path)
        assert response is not None and response.status == 200, path
        headers = response.headers
        policy = {d.split(" ", 1)[0]: d.split(" ", 1)[1] for d in headers["content-security-policy"].split("; ")}
        assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'", path
        assert policy["script-src"].startswith("'self'") and "unsafe" not in policy["script-src"], path
        assert policy["default-src"] == "'self'", path
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "same-origin", path
        assert headers["x-frame-options"] == "DENY", path
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__violations") == [], path
    assert page.elsewhere == []


def test_a_scenarios_report_runs_its_own_script_and_nothing_else(page, admin):
    """The report frame (srcdoc, sandboxed) inherits the scenario page's policy, which allows the report's
    inline script and style by their hashes."""
    page.add_init_script(WATCH_POLICY)
    log_in(page, admin)
    page.wait_for_url(base(admin) + "/")
    page.goto(base(admin) + "/scenarios/1")
    report = page.frame_locator("#report")
    expect(report.locator("#summary")).to_contain_text("dd")  # its script ran
    expect(report.locator("#flame div").first).to_be_attached()  # and drew the flame graph
    assert page.evaluate("window.__violations") == []
    frame = next(f for f in page.frames if f != page.main_frame)
    assert frame.evaluate("window.__violations") == []


def test_no_other_origin_can_frame_the_admin(page, admin, other_origin):
    page.allowed.append(other_origin + "/")
    for path in ("/login", "/users"):
        page.goto(f"{other_origin}/?src={urllib.parse.quote(base(admin) + path, safe='')}")
        page.wait_for_load_state("load")
        frame = page.frame_locator("#f")
        expect(frame.locator("body")).to_be_attached()
        framed = [f for f in page.frames if f != page.main_frame]
        assert framed and not framed[0].url.startswith(base(admin)), framed[0].url  # chromium's error page
        assert frame.locator("#login, #users").count() == 0, path


@pytest.mark.parametrize("next_", [
    "/\\{other}/", "/\t/{other}/", "//{other}/", "/\\/{other}/", "http://{other}/", "javascript:alert(1)",
    "/%5C{other}/", " //{other}/",
])
def test_the_login_never_leads_off_the_site(page, admin, other_origin, next_):
    log_in(page, admin, next_=next_.format(other=urllib.parse.urlsplit(other_origin).netloc))
    page.wait_for_url(lambda url: "/login" not in url)
    page.wait_for_load_state("networkidle")
    assert page.url.startswith(base(admin) + "/"), page.url
    assert page.elsewhere == [], page.elsewhere


def test_the_login_keeps_a_path_on_the_site(page, admin):
    log_in(page, admin, next_="/components?view=1#syscalls")
    page.wait_for_url(base(admin) + "/components?view=1#syscalls")


def test_the_users_page_encodes_a_name_in_the_urls_it_builds(page, admin):
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}") if "/api/v1/" in r.url else None)
    log_in(page, admin)
    page.wait_for_url(base(admin) + "/")
    page.goto(base(admin) + "/users")
    page.get_by_role("button", name="Delete ../scenarios/1").click()
    page.wait_for_load_state("networkidle")
    deletes = [r for r in requests if r.startswith("DELETE ")]
    assert deletes == [f"DELETE {base(admin)}/api/v1/users/..%2Fscenarios%2F1"], deletes
    token = admin.login("root")
    assert admin.call("GET", "/api/v1/scenarios/1", token).status == 200  # not deleted through the name

