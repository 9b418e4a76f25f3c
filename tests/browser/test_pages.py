"""The web page, in headless chromium: logging in and out, live charts after a workload, turning a collector
off and on (the page and /metrics follow), what a viewer may not do, a bad config edit, every page free of
console errors, usable on a phone's width, with accessible names on its controls; a Containers row's links to its
charts and to a scenario of its process, followed."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import expect

from admin.api.charts import promql_regex
from lmp import config as configs
from testkit.workloads import processes_and_signals, tcp_traffic, udp_to_closed_port
from tests.conftest import made_cgroup
from tests.lmprun import serving, wait_for

from .conftest import ARTIFACTS, Tab

PAGES = ["/", "/components", "/components/runqlat", "/containers", "/config", "/users", "/audit", "/scenarios"]


def logged_in(tab: Tab, user: str) -> None:
    tab.login(user)
    tab.page.wait_for_url(tab.stack.base + "/")
    expect(tab.page.locator("#who")).to_contain_text(user)


def test_login_a_wrong_password_and_logout(tab):
    page = tab.login("admin", "not-the-password")
    expect(page.get_by_role("alert")).to_have_text("wrong user name or password")
    assert page.url.startswith(tab.stack.base + "/login")
    tab.shot("wrong-password")
    tab.problems.clear()  # the refused login is a 401 the browser reports; nothing else may be
    logged_in(tab, "admin")
    tokens = [page.evaluate(f"sessionStorage.getItem('{key}')") for key in ("lmp.access", "lmp.refresh")]
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login?reason=logged_out**")
    expect(page.locator("#reason")).to_have_text("You are logged out.")

    def refused(token: str) -> bool:  # the page does not wait for the revocations (keepalive): they land soon
        request = urllib.request.Request(tab.stack.base + "/api/v1/auth/refresh", method="POST",
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as e:
            return e.code == 401
        return False
    assert wait_for(lambda: refused(tokens[1]), timeout=30)  # the refresh token is revoked: no new access
    tab.go("/components")  # the tokens are gone: back to the login page
    page.wait_for_url("**/login?reason=login**")
    assert not tab.problems, tab.problems


def test_a_revoked_session_ends_with_a_clear_message(tab):
    logged_in(tab, "view")
    tokens = [tab.page.evaluate(f"sessionStorage.getItem('{key}')") for key in ("lmp.access", "lmp.refresh")]
    # Off the overview first: its next refresh would find the tokens revoked and go to the login page
    # itself, racing the navigation below. sessionStorage stays with the tab.
    tab.page.goto("about:blank")
    for token in tokens:  # logged out elsewhere: both tokens revoked behind the page
        request = urllib.request.Request(tab.stack.base + "/api/v1/auth/logout", method="POST",
                                         headers={"Authorization": f"Bearer {token}"})
        urllib.request.urlopen(request, timeout=10).close()
    # The page sends itself to the login page as soon as its first API call is refused, which may be before
    # its load event: wait for the navigation to start only, or goto reports the redirect as an abort.
    tab.page.goto(tab.stack.base + "/components", wait_until="commit")
    tab.page.wait_for_url("**/login?reason=expired**")
    expect(tab.page.locator("#reason")).to_contain_text("Your session has ended")


def chart(tab: Tab, title: str):  # type: ignore[no-untyped-def]
    return tab.page.locator("figure.chart", has=tab.page.locator("figcaption", has_text=title))


def drawn_pixels(tab: Tab, title: str) -> int:
    """Pixels of the chart's canvas that are not background: the lines uPlot drew."""
    return tab.page.evaluate("""(title) => {
        const fig = [...document.querySelectorAll('figure.chart')].find(f => f.querySelector('figcaption').textContent === title);
        const canvas = fig.querySelector('canvas');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
        return n;
    }""", title)


@pytest.mark.parametrize("title", ["System calls per second (top 10)", "Run-queue latency (p50, p90, p99)",
                                   "Connections opened per second", "Packets dropped per second (top 10 reasons)",
                                   "Processes killed by a signal per second"])
def test_overview_charts_draw_real_points_after_a_workload(tab, title):
    tcp_traffic()
    udp_to_closed_port()
    processes_and_signals()
    logged_in(tab, "view")
    figure = chart(tab, title)
    expect(figure).to_have_count(1)

    def points() -> int:
        return int(figure.locator("[role=img]").get_attribute("data-points") or 0)
    wait_for(points, timeout=60)  # the page refreshes every 5 s
    assert drawn_pixels(tab, title) > 100
    assert "points" in figure.locator("[role=img]").get_attribute("aria-label")
    tab.shot("overview")
    assert not tab.problems, tab.problems


def test_an_operator_turns_a_collector_off_and_on(tab):
    logged_in(tab, "ops")
    page = tab.go("/components")
    switch = page.get_by_role("switch", name="Enable runqlat")
    expect(switch).to_be_checked()
    switch.click()
    row = page.locator("#component-runqlat")
    expect(row.locator("td.state")).to_have_text("off")
    wait_for(lambda: not serving(tab.stack.ports["runqlat"]), timeout=30)  # its process ended, port closed
    tab.shot("runqlat-off")
    page.get_by_role("switch", name="Enable runqlat").click()
    expect(page.locator("#component-runqlat td.state")).to_contain_text("running", timeout=30000)
    wait_for(lambda: serving(tab.stack.ports["runqlat"]), timeout=60)  # /metrics answers again
    assert configs.load(tab.stack.config).collectors["runqlat"].enabled  # through the YAML config
    tab.shot("runqlat-on")
    assert not tab.problems, tab.problems


def test_a_viewer_sees_no_switch_and_a_forged_request_is_refused(tab):
    logged_in(tab, "view")
    page = tab.go("/components")
    expect(page.locator("#component-syscalls")).to_be_visible()
    assert page.get_by_role("switch").count() == 0
    expect(page.locator("#component-syscalls td").nth(3)).to_have_text("yes")
    status = page.evaluate("""async () => {
        const r = await fetch('/api/v1/components/syscalls/disable', {method: 'POST',
            headers: {Authorization: 'Bearer ' + sessionStorage.getItem('lmp.access')}});
        return [r.status, (await r.json()).message];
    }""")
    assert status == [403, "this needs the operator role"]
    assert serving(tab.stack.ports["syscalls"])
    assert page.get_by_role("link", name="Users").is_hidden()  # admin pages are not offered
    tab.shot("viewer-components")


def test_a_bad_config_edit_shows_its_line_and_saves_nothing(tab):
    logged_in(tab, "admin")
    page = tab.go("/config")
    expect(page.locator("#status")).to_have_text("Loaded. Edit and save.")
    before = tab.stack.config.read_bytes()
    port = tab.stack.ports["runqlat"]
    bad = before.decode().replace(f"listen: 127.0.0.1:{port}", "listen: nowhere")
    line = next(i for i, text in enumerate(bad.splitlines(), 1) if "listen: nowhere" in text)
    page.evaluate("(text) => document.querySelector('.CodeMirror').CodeMirror.setValue(text)", bad)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text(f"Not saved: line {line}:")
    expect(page.get_by_role("alert")).to_contain_text("'nowhere' is not HOST:PORT")
    expect(page.locator(".bad-line")).to_have_count(1)
    assert tab.stack.config.read_bytes() == before  # the file on disk is unchanged
    tab.shot("config-refused")
    tab.problems.clear()  # the refusal is a 422 the browser reports; nothing else may be


@pytest.mark.parametrize("user", ["admin", "view"])
def test_no_console_errors_on_any_page(tab, user):
    logged_in(tab, user)
    for path in PAGES:
        page = tab.go(path)
        page.wait_for_load_state("networkidle")
        expect(page.locator("#who")).to_contain_text(user)
        page.wait_for_timeout(1500)  # the first refresh of live data
        tab.shot(f"{user}-{path.strip('/').replace('/', '-') or 'overview'}")
    assert not tab.problems, tab.problems


def test_every_page_fits_a_phone_and_names_its_controls(browser, stack):
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    tab = Tab(page, stack, "phone")
    try:
        logged_in(tab, "admin")
        for path in [*PAGES, "/login", "/docs/runbook"]:
            tab.go(path).wait_for_load_state("networkidle")
            page.wait_for_timeout(1000)
            wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 1, f"{path} is {wide} px wider than the screen"
            unnamed = page.evaluate("""() => [...document.querySelectorAll('a, button, input, select, textarea')]
                .filter(el => el.offsetParent !== null && !el.closest('.CodeMirror'))
                .filter(el => !(el.getAttribute('aria-label') || (el.labels && el.labels.length) ||
                                el.textContent.trim() || el.title || el.querySelector('img[alt]:not([alt=""])')))
                .map(el => el.outerHTML.slice(0, 80))""")
            assert not unnamed, f"{path}: controls without an accessible name: {unnamed}"
            tab.shot(re.sub(r"\W+", "-", path.strip("/")) or "overview")
        assert not tab.problems, tab.problems
    finally:
        context.close()


def test_the_page_reads_prometheus_through_the_admin(tab):
    """The charts' data comes from the admin's API: the browser never talks to Prometheus."""
    requests: list[str] = []
    tab.page.on("request", lambda r: requests.append(r.url))
    logged_in(tab, "view")
    tab.page.wait_for_timeout(3000)
    assert any("/api/v1/charts/overview/" in url for url in requests)
    assert not [url for url in requests if f":{tab.stack.ports['prometheus']}" in url]
    data = json.loads(tab.page.evaluate("""async () => JSON.stringify(await (await fetch('/api/v1/charts/overview',
        {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('lmp.access')}})).json())"""))
    assert all(q["expr"] for c in data for q in c["queries"])


def test_a_scenario_started_from_the_page_shows_its_breakdown_timeline_and_flame_graph(tab, disk_dir):
    logged_in(tab, "admin")
    page = tab.go("/scenarios")
    page.get_by_label("a command I start").check()
    page.get_by_label("Command (words separated by spaces; quotes group)").fill(
        f"dd if=/dev/zero of={disk_dir / 'written'} bs=4096 count=64 oflag=direct")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r".*/scenarios/\d+$"))
    expect(page.locator("#run")).to_contain_text("complete", timeout=90000)
    breakdown = page.locator("#breakdown")
    expect(breakdown.get_by_role("cell", name="off CPU, uninterruptible (disk, locks)")).to_be_visible()
    expect(breakdown.get_by_role("cell", name="pwrite64", exact=True).or_(
        breakdown.get_by_role("cell", name="write", exact=True))).to_be_visible()
    report = page.frame_locator("#report")
    expect(report.locator("#flame")).not_to_be_empty()
    expect(report.locator("#summary")).to_contain_text("dd")
    tab.shot("scenario")
    page.locator("#report").scroll_into_view_if_needed()
    page.locator("#report").screenshot(path=str(ARTIFACTS / f"{tab.name}-report.png"))
    assert not tab.problems, tab.problems


def test_an_operator_may_only_attach_and_a_viewer_may_not_start(tab):
    logged_in(tab, "ops")
    page = tab.go("/scenarios")
    expect(page.get_by_role("button", name="Start")).to_be_visible()
    assert page.get_by_label("a command I start").is_hidden()  # a command runs as root: admins only
    tab.go("/login")
    logged_in(tab, "view")
    page = tab.go("/scenarios")
    expect(page.locator("#runs")).to_be_visible()
    assert page.get_by_role("button", name="Start").is_hidden()
    tab.shot("viewer-scenarios")


# Page faults, steadily and without forking (a fresh 4 MiB mapping written each time: 1024 faults), so that the
# process alone is its cgroup's row and its pid the one the row names. It starts once it is in the cgroup.
FAULTS = """import mmap, sys, time
sys.stdin.readline()
page = b"x" * mmap.PAGESIZE
while True:
    with mmap.mmap(-1, 4 << 20) as m:
        for offset in range(0, 4 << 20, mmap.PAGESIZE):
            m[offset:offset + mmap.PAGESIZE] = page
    time.sleep(0.1)
"""
FAULTS_CHART = "page_faults_total per second by mode, access, cause"


def busiest(tab: Tab, board: str, title: str, cgroup: str) -> float:
    """The highest point of a chart for one cgroup, through the API as the page reads it (-1: no series)."""
    return tab.page.evaluate("""async ([board, title, cgroup]) => {
        const get = async (path) => (await fetch(`/api/v1/charts/${board}${path}`,
            {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('lmp.access')}})).json();
        const id = (await get('')).find((c) => c.title === title).id;
        const series = (await get(`/${id}?cgroup=${encodeURIComponent(cgroup)}`)).series;
        return Math.max(-1, ...series.flatMap((s) => s.values.map((p) => p[1])));
    }""", [board, title, cgroup])


def test_a_containers_row_links_to_its_charts_and_a_scenario_of_its_process(tab):
    unit = "lmp-browser-top.service"
    with made_cgroup() as (top_dir, top_path):
        group, cgroup = top_dir / unit, f"{top_path}/{unit}"
        group.mkdir()
        proc = subprocess.Popen([sys.executable, "-c", FAULTS], stdin=subprocess.PIPE, text=True)
        try:
            (group / "cgroup.procs").write_text(str(proc.pid))
            proc.stdin.write("go\n")
            proc.stdin.flush()
            logged_in(tab, "ops")
            page = tab.go("/containers")
            row = page.locator("#containers tbody tr", has=page.get_by_role("cell", name=unit, exact=True))
            expect(row).to_have_count(1, timeout=30000)  # the page refreshes every 5 s
            board = row.get_by_role("link", name="dashboard")
            record = row.get_by_role("link", name=f"record a scenario (attach {proc.pid})")
            # its faults are all it does that the stack's collectors see by cgroup: pagefault's page
            query = urllib.parse.urlencode
            expect(board).to_have_attribute("href", "/components/pagefault?" + query({"cgroup": cgroup}))
            expect(record).to_have_attribute("href", "/scenarios?" + query({"pid": proc.pid, "name": unit}))
            tab.shot("containers")

            board.click()
            page.wait_for_url("**/components/pagefault?cgroup=*")
            expect(page.locator("#only")).to_contain_text(f"For {unit} (unit, {cgroup}) only")
            faults = chart(tab, FAULTS_CHART)
            wait_for(lambda: int(faults.locator("[role=img]").get_attribute("data-points") or 0) > 0, timeout=60)
            expect(faults.locator("code")).to_contain_text(f'cgroup=~"{promql_regex(cgroup)}"')  # the PromQL shown
            # Its faults, and only its: the same chart for a cgroup nobody is in has no series.
            wait_for(lambda: busiest(tab, "pagefault", FAULTS_CHART, cgroup) > 100, timeout=60)
            assert busiest(tab, "pagefault", FAULTS_CHART, "/lmp-none") == -1
            tab.shot("component-for-a-cgroup")

            page.go_back()
            page.locator("#containers tbody tr", has=page.get_by_role("cell", name=unit, exact=True)).get_by_role(
                "link", name=f"record a scenario (attach {proc.pid})").click()
            page.wait_for_url("**/scenarios?pid=*")
            expect(page.get_by_label("a running process")).to_be_checked()
            expect(page.get_by_label("Process id")).to_have_value(str(proc.pid))
            expect(page.locator("#for")).to_have_text(
                f"For {unit}: its process {proc.pid} is filled in; Start records it.")
            tab.shot("scenario-for-a-container")
            page.get_by_label("Seconds (at most)").fill("2")
            page.get_by_role("button", name="Start").click()  # one click records that container's process
            page.wait_for_url(re.compile(r".*/scenarios/\d+$"))
            expect(page.locator("#run")).to_contain_text(f"attach pid {proc.pid}, by ops: complete", timeout=90000)
            assert not tab.problems, tab.problems
        finally:
            proc.kill()
            proc.wait()
            group.rmdir()


def test_a_viewer_gets_no_link_to_record_from_the_containers_page(tab):
    logged_in(tab, "view")
    page = tab.go("/containers")
    expect(page.locator("#containers tbody tr").first).to_be_visible(timeout=30000)
    expect(page.get_by_role("link", name="dashboard").first).to_be_visible()
    assert page.get_by_role("link", name=re.compile("record a scenario")).count() == 0
