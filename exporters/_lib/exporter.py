"""One collector as its own process: check, bind, load and attach, then serve /metrics until told to stop."""
from __future__ import annotations

import gzip
import ipaddress
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from cheroot.wsgi import Server
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder

from . import bpf, httpserver, webconfig
from .collector import BpfCollector, SelfCollector
from .serving import EXIT_FAILED, EXIT_UNSUPPORTED, EXIT_USAGE, parse_listen, scrape_url
from .spec import Spec
from .webconfig import WebConfig

if TYPE_CHECKING:
    from .function.eventlog import EventLog
    from .function.policy import PolicySource


def loopback(environ: dict) -> bool:
    """The client is on this host's loopback (127.0.0.1 reaching a dual-stack [::] socket included)."""
    try:
        address = ipaddress.ip_address(environ.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


FORGET_EVERY = 30.0  # seconds between reads of the maps that forget the dead when nobody scrapes


class MetricsApp:
    """The WSGI app behind /metrics: the collector's BPF metrics, then client_python's registry (self and
    process metrics). The format follows the Accept header as client_python chooses it (OpenMetrics when
    asked, else text 0.0.4), and the body is gzipped when the client accepts it."""

    def __init__(self, registry: CollectorRegistry, authenticated: bool = False) -> None:
        self.registry = registry
        self.authenticated = authenticated  # basic auth stands in front: /events may answer any address
        self.collector: BpfCollector | None = None  # set once the kernel code is loaded
        self.events: EventLog | None = None  # a function component's events, served at /events?after=N

    def __call__(self, environ: dict, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "/")
        if path == "/events" and self.events is not None:
            # Events name processes and destinations. Without basic auth they are for the admin, which runs
            # on this host, even when /metrics listens on every address.
            if not (self.authenticated or loopback(environ)):
                start_response("403 Forbidden", [("Content-Type", "text/plain")])
                return [b"forbidden: /events answers loopback only, unless the web config sets basic auth\n"]
            after = parse_qs(environ.get("QUERY_STRING", "")).get("after", ["0"])[0]
            body = json.dumps(self.events.page(int(after) if after.isdigit() else 0)).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if path not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics\n"]
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        openmetrics = content_type.startswith("application/openmetrics-text")
        body = (self.collector.render(openmetrics) if self.collector else "").encode() + encoder(self.registry)
        headers = [("Content-Type", content_type)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)  # level 1: most of the saving, a fraction of the time
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]


def bind(host: str, port: int, app: MetricsApp, web: WebConfig | None = None) -> Server:
    """A listening /metrics server (TLS and basic auth as `web` says). It is bound now but serves only once
    serve() runs: scrapes made while the kernel code loads wait in the listen queue instead of getting an
    empty answer."""
    server = httpserver.server(host, port, app, web, name="lmp-exporter")
    server.prepare()
    return server


def say(name: str, message: str) -> None:
    print(f"lmp exporter {name}: {message}", file=sys.stderr, flush=True)


def serve(spec: Spec, listen: str, values: dict[str, bool | int], policy: PolicySource | None = None,
          btf_path: Path | None = None, web_config: Path | None = None) -> int:
    """Run until SIGINT or SIGTERM; returns the process exit code. A function component applies `policy`
    (and follows their file) once its programs are loaded. btf_path: the kernel's types, where the kernel
    has no /sys/kernel/btf/vmlinux. web_config: TLS and basic auth, in exporter-toolkit's format."""
    name = spec.name
    if os.geteuid() != 0:
        say(name, "must run as root (loading eBPF programs needs CAP_SYS_ADMIN and CAP_BPF)")
        return EXIT_FAILED
    try:
        host, port = parse_listen(listen)
        web = webconfig.load(web_config) if web_config else None
        missing = bpf.missing_hooks(spec)
    except (ValueError, bpf.LoadError) as err:
        say(name, str(err))
        return EXIT_USAGE if isinstance(err, ValueError) else EXIT_UNSUPPORTED
    if missing:
        say(name, f"this kernel lacks the hook(s) it requires: {', '.join(missing)}")
        return EXIT_UNSUPPORTED
    if (why := bpf.btf_missing(btf_path)) is not None:
        say(name, why)
        return EXIT_UNSUPPORTED

    stop = threading.Event()  # set by SIGINT/SIGTERM
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    app = MetricsApp(registry, authenticated=bool(web and web.users))
    try:  # bind before loading anything, so a busy port leaves nothing attached
        server = bind(host, port, app, web)
    except OSError as err:
        say(name, f"cannot listen on {listen}: {err.strerror or err}")
        return EXIT_FAILED
    try:
        loaded = bpf.load(spec, values, btf_path)
    except bpf.LoadError as err:
        say(name, str(err))
        server.stop()
        return EXIT_FAILED
    runtime = None
    if spec.kind == "function":  # only a function component loads its runtime
        from . import function
        try:
            runtime = function.start(spec, loaded, policy)
        except function.REFUSED as err:  # a bad policy, a missing interface or cgroup
            say(name, f"policy refused, nothing attached: {err}")
            loaded.close()
            server.stop()
            return EXIT_USAGE
        registry.register(runtime)
        app.events = runtime.events

    watcher = None
    if spec.uprobes is not None or any(m.per_process for m in spec.internal_maps):
        from .uprobes import Watcher
        watcher = Watcher(spec, loaded)
        watcher.start()
        registry.register(watcher)

    thread = threading.Thread(target=server.serve, daemon=True)
    collector = app.collector = BpfCollector(spec, loaded, values)

    def forget_on_schedule() -> None:
        # A read of the maps deletes the keys of removed cgroups, exited processes and command names no
        # task runs, and ends their series after forget_after, whether Prometheus scrapes or not: the maps
        # of an unscraped exporter must not fill with the dead.
        while not stop.wait(FORGET_EVERY):
            collector.render(False)
    threading.Thread(target=forget_on_schedule, daemon=True).start()
    if runtime:
        runtime.forget_labels = collector.forget_labels
    try:
        registry.register(SelfCollector(collector))
        thread.start()
        say(name, f"attached {len(loaded.attached())} program(s) in {loaded.seconds:.2f} s; "
                  f"serving {scrape_url(listen, tls=bool(web and web.tls))}")
        stop.wait()
    finally:
        server.stop()  # no new scrapes; one still being answered holds the collector's lock
        if runtime:
            runtime.close()  # links first: the programs stop changing what the kernel does
        if watcher:
            watcher.close()
        collector.close()
    return 0
