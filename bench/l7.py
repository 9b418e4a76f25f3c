"""`lmp bench --only l7`: what the l7 collector costs an HTTP server at full load: nginx (one worker, pinned
to CPU 0) answering Apache's `ab` (pinned to CPU 1) on loopback, with new connections and with keep-alive,
without and with the collector. Throughput is ab's requests per second; kernel time is the collector's
programs' run time (bpf_stats) during one ab run, per request. Both sides of each request pass through the
programs (ab's and nginx's syscalls), so the time per request covers a client and a server; the time per
request seen divides it by the requests the collector counted (each ab request once as ab's, once as nginx's),
the number comparable with an agent that watches one side."""
from __future__ import annotations

import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .harness import BpfStats, Exporter, free_port, program_runs

REQUESTS = 20_000
CONCURRENCY = 8

NGINX = """daemon off;
worker_processes 1;
worker_cpu_affinity 01;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir}; uwsgi_temp_path {dir};
  scgi_temp_path {dir};
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""


def ab(port: int, keepalive: bool, n: int = REQUESTS) -> float:
    """Requests per second, as ab reports them."""
    out = subprocess.run(["taskset", "-c", "1", "ab", "-q", "-n", str(n), "-c", str(CONCURRENCY),
                          *(["-k"] if keepalive else []), f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    if failed:
        raise SystemExit(f"bench l7: ab saw {failed} failed requests")
    return float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def requests_seen(listen: str) -> float:
    """HTTP requests the exporter has counted so far, both roles."""
    text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=10).read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == "lmp_http_requests"
               for s in f.samples if s.name == "lmp_http_requests_total")


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def costs(runs: int) -> tuple[list[list[str]], dict[str, float]]:
    """Rows [workload, req/s without, req/s with, loss %, kernel ns per request, per request seen], and by
    workload ("keep-alive", "new connections") its loss and ns per request seen, and the exporter's median PSS
    in MB after its runs."""
    tmp = Path(tempfile.mkdtemp(prefix="lmp-bench-l7-"))
    port = free_port()
    (tmp / "nginx.conf").write_text(NGINX.format(dir=tmp, port=port))
    nginx = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")])
    rows: list[list[str]] = []
    worst: dict = {"results": []}
    pss = []
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        for keepalive in (False, True):
            ab(port, keepalive, 2000)  # warm up
            without, with_, ns, seen = [], [], [], []
            for _ in range(runs):  # back to back, so that the VM's drift does not count as overhead
                without.append(ab(port, keepalive))
                exporter = Exporter("l7", "-o", "tls=false")
                try:
                    with_.append(ab(port, keepalive))
                    with BpfStats():
                        _, ns0 = program_runs(exporter.programs)
                        counted = requests_seen(exporter.listen)
                        ab(port, keepalive)
                        _, ns1 = program_runs(exporter.programs)
                        counted = requests_seen(exporter.listen) - counted
                    ns.append((ns1 - ns0) / REQUESTS)
                    seen.append((ns1 - ns0) / counted)
                    pss.append(exporter.memory_mb()["pss"])
                finally:
                    exporter.stop()
            loss = 100 * (1 - statistics.median(with_) / statistics.median(without))
            workload = "keep-alive" if keepalive else "new connections"
            worst[workload] = {"loss": loss, "ns": statistics.median(seen)}
            rows.append([f"nginx + ab -c {CONCURRENCY}, {'keep-alive' if keepalive else 'a connection per request'}",
                         spread(without), spread(with_), f"{loss:.1f}", spread(ns), spread(seen)])
            worst["results"].append(
                {"label": "l7" if keepalive else "l7 (new connections)", "collector": "l7", "options": {},
                 "operation": "HTTP request seen, one side" + ("" if keepalive else ", a connection each"),
                 "lmp_ns": {"median": round(statistics.median(seen)), "min": round(min(seen)),
                            "max": round(max(seen)), "runs": len(seen)}, "peers": {}})
        worst["pss"] = statistics.median(pss)
        # A lone process's PSS depends on who else maps the same libraries at that moment: the yardstick is a
        # default collector's exporter, measured now, on the same host.
        yardstick = Exporter("syscalls")
        try:
            urllib.request.urlopen(f"http://{yardstick.listen}/metrics", timeout=10).read()  # scraped, as l7's was
            worst["pss_syscalls"] = yardstick.memory_mb()["pss"]
        finally:
            yardstick.stop()
    finally:
        nginx.send_signal(signal.SIGTERM)
        nginx.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return rows, worst
