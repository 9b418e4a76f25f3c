"""One collector as its own process: check, bind, compile and attach, then serve /metrics until told to stop."""
from __future__ import annotations

import os
import signal
import sys
import threading

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from . import bpf
from .collector import BpfCollector
from .spec import Spec

EXIT_USAGE, EXIT_FAILED, EXIT_UNSUPPORTED = 2, 1, 3


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or :PORT (all addresses) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {listen!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def say(name: str, message: str) -> None:
    print(f"lmp exporter {name}: {message}", file=sys.stderr, flush=True)


def serve(spec: Spec, listen: str, values: dict[str, bool | int]) -> int:
    """Run until SIGINT or SIGTERM; returns the process exit code."""
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

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    try:  # bind before loading anything, so a busy port leaves nothing attached
        server, thread = start_http_server(port, host, registry)
    except OSError as err:
        say(name, f"cannot listen on {listen}: {err.strerror or err}")
        return EXIT_FAILED
    try:
        loaded = bpf.load(spec, values)
    except bpf.LoadError as err:
        say(name, str(err))
        server.shutdown()
        return EXIT_FAILED

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        registry.register(BpfCollector(spec, loaded, values))
        url = f"http://{listen if host != '0.0.0.0' else f'localhost:{port}'}/metrics"
        say(name, f"attached {len(loaded.attached())} program(s) in {loaded.seconds:.2f} s; serving {url}")
        stop.wait()
    finally:
        loaded.close()
        server.shutdown()
        thread.join(timeout=5)
    return 0
