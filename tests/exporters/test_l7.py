"""l7: requests counted from syscalls (and OpenSSL uprobes) must match what real servers were asked.

Each server listens on a free loopback port of its own, and that port is the `service` label of its
requests on both sides (server: the listening port, client: the destination port), so other traffic on
the host does not change the numbers compared."""
from __future__ import annotations

import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from testkit import servers
from tests.conftest import Scrape, check_self_metrics

PATHS = {"/ok": ("200", 31), "/missing": ("404", 13), "/fail": ("500", 7)}  # prime counts, as the issue asks
SLOW = 3


def total(scrape: Scrape, name: str, **labels: str) -> float:
    """The sum of a metric's samples that have these labels (0 when there is none yet)."""
    return sum(s.value for family in scrape.families.values() for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def curl(*urls: str) -> None:
    """One curl for all the URLs: over one keep-alive connection when they are on one server."""
    outputs = [arg for url in urls for arg in ("-o", "/dev/null", url)]
    subprocess.run(["curl", "-s", "-k", "--noproxy", "*", *outputs], check=True, timeout=60)


def settled(e, condition: Callable[[Scrape], bool], timeout: float = 10.0) -> Scrape:
    """The first scrape where condition holds (the last one when it never does, for the assertion's message):
    a request is counted when its response is written or read, which may follow the client's exit."""
    deadline = time.monotonic() + timeout
    while True:
        scrape = e.scrape()
        if condition(scrape) or time.monotonic() > deadline:
            return scrape
        time.sleep(0.1)


def http_counts(before: Scrape, after: Scrape, port: int, role: str) -> dict[str, float]:
    return {status: delta(before, after, "lmp_http_requests_total", role=role, service=str(port), status=status)
            for status, _ in PATHS.values()}


def drive_http(base: str) -> None:
    """Each path its count of times on new connections (a curl each), then again all on one keep-alive
    connection (one curl, many URLs)."""
    for path, (_, n) in PATHS.items():
        for _ in range(n):
            curl(base + path)
    curl(*[base + path for path, (_, n) in PATHS.items() for _ in range(n)])


def check_http(e, before: Scrape, port: int, slow: int = 0) -> Scrape:
    """Both sides counted each request of drive_http (and `slow` more 200s) exactly once."""
    want = {status: 2 * n + (slow if status == "200" else 0) for status, n in PATHS.values()}
    after = settled(e, lambda s: http_counts(before, s, port, "client") == want
                    and http_counts(before, s, port, "server") == want)
    for role in ("server", "client"):
        assert http_counts(before, after, port, role) == want, role
        assert delta(before, after, "lmp_http_request_duration_seconds_count", role=role,
                     service=str(port)) == sum(want.values())
    return after


def test_http_counts_match_nginx(exporter, tmp_path: Path) -> None:
    e = exporter("l7", "-o", "tls=false")
    with servers.nginx(tmp_path) as port:
        before = e.scrape()
        drive_http(f"http://127.0.0.1:{port}")
        for _ in range(SLOW):
            curl(f"http://127.0.0.1:{port}/slow")
        after = check_http(e, before, port, SLOW)
        assert delta(before, after, "lmp_http_requests_total", role="server", service=str(port), method="GET") == \
            2 * sum(n for _, n in PATHS.values()) + SLOW
        # /slow: its upstream answers after 0.3 s, between 2^28 and 2^29 ns, for nginx and for curl
        for role in ("server", "client"):
            def bucket(le: str) -> float:
                return delta(before, after, "lmp_http_request_duration_seconds_bucket", le=le, role=role,
                             service=str(port))
            assert bucket("0.536870912") - bucket("0.268435456") == SLOW, role


def test_https_counts_once(exporter, tmp_path: Path) -> None:
    """nginx and curl both map Debian's libssl: each request is counted once per side, as HTTP, with no
    connection left counted as opaque TLS or unknown."""
    e = exporter("l7")
    with servers.nginx(tmp_path, tls=True) as port:
        before = e.scrape()
        drive_http(f"https://127.0.0.1:{port}")
        after = check_http(e, before, port)
    assert after.value("lmp_exporter_uprobe_libraries", default=0) == 1
    assert delta(before, after, "lmp_l7_connections_total", protocol="tls") == 0
    check_self_metrics(after, function=False, uprobes=True)


def test_garbage_and_unknown_protocols_do_not_disturb_counts(exporter, tmp_path: Path) -> None:
    e = exporter("l7", "-o", "tls=false")
    with servers.nginx(tmp_path) as port:
        before = e.scrape()
        with socket.create_connection(("127.0.0.1", port)) as s:  # not HTTP: nginx answers 400 and closes
            s.sendall(b"\x00\x01garbage\r\n\r\n")
            s.recv(4096)
        drive_http(f"http://127.0.0.1:{port}")
        check_http(e, before, port)
        after = e.scrape()
        assert delta(before, after, "lmp_http_requests_total", role="server", service=str(port), status="400") == 0
        assert delta(before, after, "lmp_l7_connections_total", protocol="unknown", role="server") >= 1


def test_pipelined_http_counts_each_request(exporter, tmp_path: Path) -> None:
    e = exporter("l7", "-o", "tls=false")
    with servers.nginx(tmp_path) as port:
        before = e.scrape()
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"".join(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n" for _ in range(4)))
            got = b""
            while got.count(b"HTTP/1.1 200") < 4:
                got += s.recv(65536)
        after = settled(e, lambda s: delta(before, s, "lmp_http_requests_total", role="server", service=str(port)) >= 4)
        assert delta(before, after, "lmp_http_requests_total", role="server", service=str(port), status="200") == 4


def test_redis_commands_and_errors(exporter, tmp_path: Path) -> None:
    e = exporter("l7", "-o", "tls=false")
    sets, gets, bad = 17, 11, 5
    with servers.redis(tmp_path) as port:
        before = e.scrape()
        script = "".join(f"SET key{i} {i}\n" for i in range(sets)) + "".join(f"GET key{i}\n" for i in range(gets))
        script += "".join("LPUSH key0 x\n" for _ in range(bad))  # key0 holds a string: WRONGTYPE
        subprocess.run(["redis-cli", "-p", str(port)], input=script, text=True, check=True, capture_output=True)

        def count(s: Scrape, command: str, status: str, role: str) -> float:
            return delta(before, s, "lmp_redis_requests_total", command=command, status=status, role=role,
                         service=str(port))
        want = {("SET", "ok"): sets, ("GET", "ok"): gets, ("LPUSH", "error"): bad}
        after = settled(e, lambda s: all(count(s, c, st, r) == n for (c, st), n in want.items()
                                         for r in ("server", "client")))
        for role in ("server", "client"):
            assert {k: count(after, *k, role) for k in want} == want, role
            assert count(after, "LPUSH", "ok", role) == 0


def test_dns_over_udp_and_tcp(exporter, tmp_path: Path) -> None:
    e = exporter("l7", "-o", "tls=false")
    found, missing = 7, 5
    with servers.dnsmasq(tmp_path) as port:
        before = e.scrape()
        for tcp in (False, True):
            names = ["found.lmp.test"] * found + [f"nope{i}.lmp.test" for i in range(missing)]
            subprocess.run(["dig", "+tries=1", "+time=5", *(["+tcp"] if tcp else []), "@127.0.0.1", "-p", str(port),
                            *names], check=True, capture_output=True)

        def count(s: Scrape, rcode: str, role: str) -> float:
            return delta(before, s, "lmp_dns_requests_total", rcode=rcode, role=role, qtype="A", service=str(port))
        after = settled(e, lambda s: count(s, "NXDOMAIN", "client") == 2 * missing)
        for role in ("server", "client"):
            assert count(after, "NOERROR", role) == 2 * found, role
            assert count(after, "NXDOMAIN", role) == 2 * missing, role


def postgres_asked(log: Path) -> dict[tuple[str, str], int]:
    """What the server says it was asked (log_statement=all): simple queries ("statement: ...") that
    succeeded and failed (each failure logs one ERROR), and extended ones ("execute <unnamed>: ...")."""
    text = log.read_text()
    statements, errors = len(re.findall(r"LOG:  statement: ", text)), len(re.findall(r"ERROR:  ", text))
    return {("simple", "ok"): statements - errors, ("simple", "error"): errors,
            ("extended", "ok"): len(re.findall(r"LOG:  execute ", text))}


def test_postgres_simple_and_extended(exporter, tmp_path: Path) -> None:
    """Counts match the server's own log of the queries it answered exactly, and that log holds just the
    queries the test sent: psql -X sends no query of its own, pgbench with a script of its own none."""
    e = exporter("l7", "-o", "tls=false")
    simple, failing, extended = 9, 4, 6
    log = tmp_path / "postgres.log"
    with servers.postgres(tmp_path, log=log) as port:
        psql = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres"]
        before = e.scrape()
        for _ in range(simple):
            subprocess.run([*psql, "-c", "SELECT 1"], check=True, capture_output=True)
        for _ in range(failing):  # undefined_table: SQLSTATE 42P01, class 42
            subprocess.run([*psql, "-c", "SELECT * FROM no_such_table"], capture_output=True)
        script = tmp_path / "select.sql"
        script.write_text("SELECT 1;\n")
        subprocess.run([str(servers.postgres_bin() / "pgbench"), "-n", "-M", "extended", "-t", str(extended), "-f",
                        str(script), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "postgres"],
                       check=True, capture_output=True)

        def count(s: Scrape, protocol: str, status: str, role: str, sqlstate_class: str = "") -> float:
            return delta(before, s, "lmp_postgres_requests_total", protocol=protocol, status=status, role=role,
                         sqlstate_class=sqlstate_class, service=str(port))

        def counts(s: Scrape, role: str) -> dict[tuple[str, str], float]:
            return {(p, st): count(s, p, st, role, "42" if st == "error" else "")
                    for p, st in (("simple", "ok"), ("simple", "error"), ("extended", "ok"))}
        asked = postgres_asked(log)
        assert asked == {("simple", "ok"): simple, ("simple", "error"): failing, ("extended", "ok"): extended}
        after = settled(e, lambda s: counts(s, "server") == asked and counts(s, "client") == asked)
        for role in ("server", "client"):
            assert counts(after, role) == asked, role
            assert count(after, "extended", "error", role) == 0, role
            assert delta(before, after, "lmp_postgres_requests_total", role=role, service=str(port)) == \
                sum(asked.values()), role


def test_connections_map_is_bounded(exporter) -> None:
    """More sockets in use at once than the connections map holds: the map stays at its size, the rest are
    counted as overflow, and the entries go when their process exits."""
    size, sockets = 256, 400
    e = exporter("l7", "-o", "tls=false", "-o", f"connections={size}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    code = ("import socket, sys\n"
            f"s = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range({sockets})]\n"
            "for x in s: x.sendto(b'not a protocol', ('127.0.0.1', 9))\n"
            "sys.stdout.write('sent\\n'); sys.stdout.flush(); sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "sent\n"
        full = e.scrape()
        assert full.value("lmp_exporter_map_entries", map="connections") <= size
        assert full.value("lmp_exporter_map_overflow_total", map="connections") >= sockets - size
    finally:
        proc.communicate("", timeout=10)
    assert (soft, hard) == resource.getrlimit(resource.RLIMIT_NOFILE)
    emptied = settled(e, lambda s: s.value("lmp_exporter_map_entries", map="connections") < size - 100, timeout=15)
    assert emptied.value("lmp_exporter_map_entries", map="connections") < size - 100


REUSE = """
import socket, sys
nginx, redis, rounds, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
numbers = set()
for _ in range(rounds):
    with socket.create_connection(("127.0.0.1", nginx)) as s:
        numbers.add(s.fileno())
        s.sendall(b"GET /ok HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
        while s.recv(4096):
            pass
    with open(path, "w+b", buffering=0) as f:  # the same number, a file: an HTTP answer in it is no answer
        numbers.add(f.fileno())
        f.write(b"HTTP/1.1 500 Internal Server Error\\r\\n\\r\\n")
        f.seek(0)
        f.read()
    with socket.create_connection(("127.0.0.1", redis)) as s:
        numbers.add(s.fileno())
        s.sendall(b"*1\\r\\n$4\\r\\nPING\\r\\n")
        s.recv(64)
print(len(numbers))
"""


def test_a_reused_fd_number_is_a_new_connection(exporter, tmp_path: Path) -> None:
    """A closed fd's entry is kept and filled again at its number's next use: each use, an HTTP connection,
    a file, a Redis connection, must count as itself, one after another on one number."""
    e = exporter("l7", "-o", "tls=false")
    rounds = 7
    with servers.nginx(tmp_path) as http, servers.redis(tmp_path) as redis:
        before = e.scrape()
        out = subprocess.run([sys.executable, "-c", REUSE, str(http), str(redis), str(rounds), str(tmp_path / "f")],
                             check=True, capture_output=True, text=True, timeout=60).stdout
        assert out.strip() == "1"  # every connection and the file had the same fd number

        def counts(s: Scrape) -> tuple[float, float, float]:
            return (delta(before, s, "lmp_http_requests_total", role="client", service=str(http), status="200"),
                    delta(before, s, "lmp_http_requests_total", role="client", service=str(http)),
                    delta(before, s, "lmp_redis_requests_total", role="client", service=str(redis),
                          command="PING", status="ok"))
        after = settled(e, lambda s: counts(s) == (rounds, rounds, rounds))
        assert counts(after) == (rounds, rounds, rounds)
        assert delta(before, after, "lmp_redis_requests_total", role="client", service=str(http)) == 0


def test_a_binary_with_tls_built_in_is_reported_not_covered(exporter, tmp_path: Path) -> None:
    """A process that maps no libssl but carries OpenSSL's version string (as a static or stripped binary
    does) is counted as not covered while it runs, and no longer once it exits."""
    source = tmp_path / "embedded.c"
    source.write_text('#include <unistd.h>\nconst char *v = "OpenSSL 3.0.99 (built in)";\n'
                      'int main(void) { pause(); return v[0] == 0; }\n')
    binary = tmp_path / "embedded"
    subprocess.run(["gcc", "-O1", "-s", "-o", str(binary), str(source)], check=True)
    proc = subprocess.Popen([str(binary)])
    try:
        e = exporter("l7")  # its first scan, before it serves, sees the process
        running = e.scrape().value("lmp_exporter_uprobe_uncovered_processes", reason="stripped")
        assert running >= 1
    finally:
        proc.kill()
        proc.wait()
    gone = settled(e, lambda s: s.value("lmp_exporter_uprobe_uncovered_processes", reason="stripped") < running,
                   timeout=15)
    assert gone.value("lmp_exporter_uprobe_uncovered_processes", reason="stripped") < running
