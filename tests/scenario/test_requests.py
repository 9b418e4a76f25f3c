"""Request spans: a followed nginx worker's HTTP requests, each a span on its timeline with its status and
duration, as many as a client made; the slow one (an upstream the test controls answers after
SLOW_SECONDS) holds the worker's own request to that upstream and the wait for it, off the CPU."""
from __future__ import annotations

import collections
import json
import re
import subprocess
import time
from pathlib import Path

from testkit import servers
from tests.scenario.conftest import Background

PATHS = {"/ok": (200, 5), "/missing": (404, 3), "/fail": (500, 2)}


def curl(*urls: str) -> None:
    """One curl for all the URLs: one keep-alive connection."""
    outputs = [arg for url in urls for arg in ("-o", "/dev/null", url)]
    subprocess.run(["curl", "-s", "--noproxy", "*", *outputs], check=True, timeout=60)


def worker_of(folder: Path) -> int:
    """nginx's one worker process: the master's child (the master wrote its pid in the folder)."""
    master = int((folder / "nginx.pid").read_text())
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def overlap(e: dict, start: int, end: int) -> int:
    return max(0, min(e["t"], end) - max(e["start"], start))


def test_a_followed_nginx_worker_has_a_span_per_request(tmp_path: Path) -> None:
    with servers.nginx(tmp_path) as port:
        upstream = int(re.search(r"proxy_pass http://127\.0\.0\.1:(\d+);", (tmp_path / "nginx.conf").read_text())[1])
        worker = worker_of(tmp_path)
        rec = Background(tmp_path / "out", "attach", "--pid", str(worker), "--duration", "60")
        try:
            base = f"http://127.0.0.1:{port}"
            curl(*[base + path for path, (_, n) in PATHS.items() for _ in range(n)])  # one keep-alive connection
            for path, (_, n) in PATHS.items():  # a new connection each
                for _ in range(n):
                    curl(base + path)
            began = time.monotonic()
            curl(base + "/slow")
            took = time.monotonic() - began
        finally:
            rec.interrupt()
        run = rec.wait()
    assert run.proc.returncode == 0, run.proc.stderr

    spans = [e for e in run.events if e["kind"] == "request"]
    served = [e for e in spans if e["role"] == "server"]
    assert all(e["protocol"] == "http" and e["method"] == "GET" and e["port"] == port and e["tgid"] == worker
               for e in served)
    want = {status: 2 * n for status, n in PATHS.values()}
    want[200] += 1  # /slow
    assert collections.Counter(e["status"] for e in served) == want
    asked = [e for e in spans if e["role"] == "client"]  # nginx's own request to the slow upstream
    assert [(e["protocol"], e["status"], e["port"]) for e in asked] == [("http", 200, upstream)]
    assert len(spans) == sum(want.values()) + 1
    # the kernel's exact counts agree, and nothing was lost
    assert {(r["protocol"], r["role"]): r["count"] for r in run.breakdown["requests"]} == \
        {("http", "server"): sum(want.values()), ("http", "client"): 1}
    assert run.breakdown["events"]["request"] == {"made": len(spans), "lost": 0}

    slow = max(served, key=lambda e: e["dur"])
    assert servers.SLOW_SECONDS * 1e9 <= slow["dur"] <= took * 1e9
    assert all(e["dur"] < 0.1e9 for e in served if e is not slow)
    upstream_span = asked[0]
    assert slow["start"] < upstream_span["start"] < upstream_span["t"] <= slow["t"]
    assert upstream_span["dur"] >= servers.SLOW_SECONDS * 1e9
    # inside it, the worker waited for the upstream off the CPU, in epoll_wait
    mine = [e for e in run.events if e["tid"] == slow["tid"]]
    asleep = sum(overlap(e, slow["start"], slow["t"]) for e in mine if e["kind"] == "offcpu")
    assert asleep >= 0.9 * servers.SLOW_SECONDS * 1e9
    waits = [e for e in mine if e["kind"] == "syscall" and e["name"].startswith("epoll")
             and overlap(e, slow["start"], slow["t"]) >= 0.9 * servers.SLOW_SECONDS * 1e9]
    assert waits, "no epoll wait inside the slow request"

    # shown: in the terminal's table, the report's timeline and the Perfetto trace
    assert re.search(rf"http, server\s+{sum(want.values())}\s", run.proc.stderr)
    html = (run.out / "report.html").read_text()
    assert html.count('"HTTP GET 500 (server)","request"') == want[500]
    trace = run.json("timeline.json")["traceEvents"]
    begins = [t for t in trace if t.get("cat") == "request" and t["ph"] == "b"]
    assert len(begins) == len([t for t in trace if t.get("cat") == "request" and t["ph"] == "e"]) == len(spans)
    assert json.dumps(begins).count('"status": 404') == want[404]
