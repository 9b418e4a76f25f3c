"""`lmp run`: every enabled collector as its own exporter process, plus a local Prometheus scraping them.

Runs in the foreground; Ctrl-C (SIGINT) or SIGTERM stops everything it started and removes its
temporary files. Exporters that cannot run here say why and exit; the others keep running."""
from __future__ import annotations

import ctypes
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from exporters._lib.exporter import scrape_url

from .config import CollectorConfig, Config

START_TIMEOUT = 60.0  # seconds for an exporter to compile, attach and answer its first scrape
STOP_TIMEOUT = 10.0


def _die_with_parent() -> None:
    """In the child: get SIGTERM if `lmp run` dies without cleaning up (PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)


def wait_until_serving(proc: subprocess.Popen, url: str, deadline: float,
                       stopping: threading.Event | None = None) -> bool:
    """True once `url` answers 200; False if the process exits, time runs out or we are stopping."""
    while time.monotonic() < deadline and proc.poll() is None and not (stopping and stopping.is_set()):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def start_exporters(cfg: Config, collectors: list[CollectorConfig], procs: dict[str, subprocess.Popen],
                    stopping: threading.Event) -> None:
    """Start every collector's exporter into `procs` (the caller's, so that it can stop what started
    even if this is interrupted), then wait for each; drop those that exit."""
    for c in collectors:
        procs[c.name] = subprocess.Popen([sys.executable, "-m", "lmp", "--config", str(cfg.path), "exporter", c.name],
                                         preexec_fn=_die_with_parent)
    deadline = time.monotonic() + START_TIMEOUT
    for c in collectors:
        proc = procs[c.name]
        if wait_until_serving(proc, scrape_url(c.listen), deadline, stopping) or stopping.is_set():
            continue
        if proc.poll() is None:
            print(f"lmp run: collector {c.name} did not answer within {START_TIMEOUT:.0f} s", file=sys.stderr)
        else:
            print(f"lmp run: collector {c.name} exited with code {proc.returncode}; the others go on",
                  file=sys.stderr)
            del procs[c.name]


def prometheus_config(cfg: Config, running: list[CollectorConfig]) -> str:
    """Prometheus' configuration: one job per collector, named lmp_<collector>."""
    lines = ["global:", f"  scrape_interval: {cfg.prometheus.scrape_interval}",
             f"  evaluation_interval: {cfg.prometheus.scrape_interval}", "scrape_configs:"]
    for c in running:
        target = scrape_url(c.listen, "").removeprefix("http://")
        lines += [f"  - job_name: lmp_{c.name}", "    static_configs:", f"      - targets: ['{target}']"]
    return "\n".join(lines) + "\n"


def start_prometheus(cfg: Config, running: list[CollectorConfig], tmp: Path) -> subprocess.Popen | None:
    binary = shutil.which("prometheus")
    if binary is None:
        print("lmp run: prometheus is not installed (scripts/install.sh installs it); exporters only",
              file=sys.stderr)
        return None
    config_file = tmp / "prometheus.yml"
    config_file.write_text(prometheus_config(cfg, running))
    data = Path(cfg.prometheus.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    with open(data / "prometheus.log", "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [binary, f"--config.file={config_file}", f"--storage.tsdb.path={data}",
             f"--storage.tsdb.retention.time={cfg.prometheus.retention}",
             f"--web.listen-address={cfg.prometheus.listen}"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(cfg: Config) -> int:
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    enabled = [c for c in cfg.collectors.values() if c.enabled]
    tmp = Path(tempfile.mkdtemp(prefix="lmp-run-"))
    procs: dict[str, subprocess.Popen] = {}
    prometheus = None
    try:
        start_exporters(cfg, enabled, procs, stopping)
        running = [c for c in enabled if c.name in procs]
        if cfg.prometheus.enabled and not stopping.is_set():
            prometheus = start_prometheus(cfg, running, tmp)
        if not procs and prometheus is None:
            print("lmp run: nothing is running (no collector started); see the messages above", file=sys.stderr)
            return 1
        if not stopping.is_set():
            print("\nLMP is running. Ctrl-C stops everything.")
            for c in running:
                print(f"  {c.name:<12} {scrape_url(c.listen)}")
            if prometheus:
                print(f"  {'prometheus':<12} {scrape_url(cfg.prometheus.listen, '/')}  (jobs lmp_<collector>)")
            sys.stdout.flush()
        while not stopping.wait(1.0):
            for name, proc in list(procs.items()):
                if proc.poll() is not None:
                    print(f"lmp run: collector {name} exited with code {proc.returncode}", file=sys.stderr)
                    del procs[name]
            if prometheus and prometheus.poll() is not None:
                print(f"lmp run: prometheus exited with code {prometheus.returncode}; see "
                      f"{cfg.prometheus.data_dir}/prometheus.log", file=sys.stderr)
                prometheus = None
    finally:
        stop([*procs.values(), *([prometheus] if prometheus else [])])
        shutil.rmtree(tmp, ignore_errors=True)
        print("lmp run: stopped", file=sys.stderr)
    return 0
