"""One collector as its own process: check, bind, load and attach, then serve /metrics until told to stop."""
from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import ThreadingWSGIServer, choose_encoder

from . import bpf
from .collector import BpfCollector, SelfCollector
from .serving import EXIT_FAILED, EXIT_UNSUPPORTED, EXIT_USAGE, parse_listen, scrape_url
from .spec import Spec

if TYPE_CHECKING:
    from .function.eventlog import EventLog
    from .function.policy import PolicySource

class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # no line per scrape on stderr
        pass


class MetricsApp:
    """The WSGI app behind /metrics: the collector's BPF metrics, then client_python's registry (self and
    process metrics). The format follows the Accept header as client_python chooses it (OpenMetrics when
    asked, else text 0.0.4), and the body is gzipped when the client accepts it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.collector: BpfCollector | None = None  # set once the kernel code is loaded
        self.events: EventLog | None = None  # a function component's events, served at /events?after=N

    def __call__(self, environ: dict, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "/")
        if path == "/events" and self.events is not None:
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


def bind(host: str, port: int, app: MetricsApp) -> ThreadingWSGIServer:
    """A listening /metrics server. It is bound now but serves only once serve_forever() runs: scrapes
    made while the kernel code loads wait in the listen queue instead of getting an empty answer."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingWSGIServer):
        address_family = family

    return make_server(host, port, app, Server, handler_class=_QuietHandler)


def say(name: str, message: str) -> None:
    print(f"lmp exporter {name}: {message}", file=sys.stderr, flush=True)


def serve(spec: Spec, listen: str, values: dict[str, bool | int], policy: PolicySource | None = None,
          btf_path: Path | None = None) -> int:
    """Run until SIGINT or SIGTERM; returns the process exit code. A function component applies `policy`
    (and follows their file) once its programs are loaded. btf_path: the kernel's types, where the kernel
    has no /sys/kernel/btf/vmlinux."""
    name = spec.name
    if os.geteuid() != 0:
        say(name, "must run as root (loading eBPF programs needs CAP_SYS_ADMIN and CAP_BPF)")
        return EXIT_FAILED
    try:
        host, port = parse_listen(listen)
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
    app = MetricsApp(registry)
    try:  # bind before loading anything, so a busy port leaves nothing attached
        server = bind(host, port, app)
    except OSError as err:
        say(name, f"cannot listen on {listen}: {err.strerror or err}")
        return EXIT_FAILED
    try:
        loaded = bpf.load(spec, values, btf_path)
    except bpf.LoadError as err:
        say(name, str(err))
        server.server_close()
        return EXIT_FAILED
    runtime = None
    if spec.kind == "function":  # only a function component loads its runtime
        from . import function
        try:
            runtime = function.start(spec, loaded, policy)
        except function.REFUSED as err:  # a bad policy, a missing interface or cgroup
            say(name, f"policy refused, nothing attached: {err}")
            loaded.close()
            server.server_close()
            return EXIT_USAGE
        registry.register(runtime)
        app.events = runtime.events

    watcher = None
    if spec.uprobes is not None or any(m.per_process for m in spec.internal_maps):
        from .uprobes import Watcher
        watcher = Watcher(spec, loaded)
        watcher.start()
        registry.register(watcher)

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    collector = app.collector = BpfCollector(spec, loaded, values)
    if runtime:
        runtime.forget_labels = collector.forget_labels
    try:
        registry.register(SelfCollector(collector))
        thread.start()
        say(name, f"attached {len(loaded.attached())} program(s) in {loaded.seconds:.2f} s; "
                  f"serving {scrape_url(listen)}")
        stop.wait()
    finally:
        if thread.is_alive():
            server.shutdown()  # no new scrapes; one still being answered holds the collector's lock
        if runtime:
            runtime.close()  # links first: the programs stop changing what the kernel does
        if watcher:
            watcher.close()
        collector.close()
        server.server_close()
    return 0
