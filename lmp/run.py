"""`lmp run`: LMP in the foreground: the admin service, which owns one exporter process per enabled
collector, and a local Prometheus that finds the exporters through the admin's service discovery.

With `admin: {enabled: false}` it starts the exporters itself and gives Prometheus a static list. Ctrl-C
(SIGINT) or SIGTERM stops everything it started and removes its temporary files. Exporters that cannot run
here say why; the others keep running."""
from __future__ import annotations

import ctypes
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from admin.supervisor import Supervisor
from exporters._lib.exporter import parse_listen, scrape_url

from .config import CollectorConfig, Config

START_TIMEOUT = 60.0  # seconds for an exporter to compile, attach and answer its first scrape
ADMIN_TIMEOUT = 30.0  # seconds for the admin service to answer its health check
STOP_TIMEOUT = 20.0  # the admin stops its exporters before it exits
JOB = "lmp"  # Prometheus' job for every LMP exporter; the `collector` label tells them apart
DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards" / "grafana"  # generated from the specs


def _die_with_parent() -> None:
    """In the child: get SIGTERM if `lmp run` dies without cleaning up (PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)


def lmp_command(cfg: Config, *args: str) -> list[str]:
    return [sys.executable, "-m", "lmp", "--config", str(cfg.path), *args]


def wait_until_serving(proc: subprocess.Popen | None, url: str, deadline: float,
                       stopping: threading.Event | None = None) -> bool:
    """True once `url` answers 200; False if the process exits, time runs out or we are stopping."""
    while time.monotonic() < deadline and (proc is None or proc.poll() is None) \
            and not (stopping and stopping.is_set()):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def listen_error(listen: str) -> str | None:
    """Why `listen` cannot be bound now (another LMP holds it, say), or None."""
    host, port = parse_listen(listen)
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no obstacle
            s.bind((host, port))
    except OSError as err:
        return err.strerror or str(err)
    return None


def service_token_file(cfg: Config) -> Path:
    return Path(cfg.admin.data_dir) / "service.token"


def target_groups(cfg: Config) -> list[dict]:
    """The static equivalent of the admin's service discovery, for when the admin is off."""
    host = socket.gethostname()
    return [{"targets": [scrape_url(c.listen, "").removeprefix("http://")],
             "labels": {"collector": c.name, "instance": host}}
            for c in cfg.collectors.values() if c.enabled]


def prometheus_config(cfg: Config) -> dict:
    """Prometheus' configuration: one job, `lmp`, whose targets come from the admin's HTTP service
    discovery (refreshed every few seconds, so enabling a collector needs no restart), or are listed
    statically when the admin is off. honor_labels keeps the exporters' own `collector` label, which
    is the same as the target's, instead of renaming it exported_collector."""
    job: dict = {"job_name": JOB, "honor_labels": True}
    if cfg.admin.enabled:
        # `type: Bearer` spelled out: Prometheus 2.42 leaves the default out of http_sd's requests.
        job["http_sd_configs"] = [{"url": scrape_url(cfg.admin.listen, "/api/v1/sd"), "refresh_interval": "5s",
                                   "authorization": {"type": "Bearer",
                                                     "credentials_file": str(service_token_file(cfg))}}]
    else:
        job["static_configs"] = target_groups(cfg)
    interval = cfg.prometheus.scrape_interval
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval}, "rule_files": rule_paths(cfg),
            "scrape_configs": [job]}


def rule_paths(cfg: Config) -> list[str]:
    """The alert rule files; relative ones are the config file's neighbours."""
    return [str((cfg.path.parent / f).resolve()) for f in cfg.prometheus.rule_files]


def start_prometheus(cfg: Config, tmp: Path) -> subprocess.Popen | None:
    binary = shutil.which("prometheus")
    if binary is None:
        print("lmp run: prometheus is not installed (scripts/install.sh installs it); exporters only",
              file=sys.stderr)
        return None
    config_file = tmp / "prometheus.yml"
    config_file.write_text(json.dumps(prometheus_config(cfg), indent=2))  # JSON is YAML
    data = Path(cfg.prometheus.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    with open(data / "prometheus.log", "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [binary, f"--config.file={config_file}", f"--storage.tsdb.path={data}",
             f"--storage.tsdb.retention.time={cfg.prometheus.retention}",
             f"--web.listen-address={cfg.prometheus.listen}"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)


class Admin:
    """`lmp admin serve --supervise` as a child. Its stderr is passed through, and the first admin's
    password, printed once on the first start, is kept for the summary."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.password: str | None = None
        # Its own session, so that a terminal's Ctrl-C does not reach gunicorn's worker as well as the
        # SIGQUIT its master then sends: the threaded worker's quit handler, run twice, deadlocks (seen with
        # gunicorn 27.0).
        # `lmp run` stops it with one SIGTERM, gunicorn's graceful stop.
        self.proc = subprocess.Popen(lmp_command(cfg, "admin", "serve", "--supervise", "--stop-exporters-on-exit"),
                                     stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent,
                                     start_new_session=True)
        threading.Thread(target=self._relay, daemon=True).start()

    def _relay(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            sys.stderr.write(line)
            if "created the first admin account" in line:
                self.password = line.rsplit("password ", 1)[1].strip()

    def components(self) -> dict[str, dict]:
        """The catalog as the admin sees it, read with the service token."""
        token = service_token_file(self.cfg).read_text().strip()
        request = urllib.request.Request(scrape_url(self.cfg.admin.listen, "/api/v1/components"),
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return {c["name"]: c for c in json.load(response)}


def last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def wait_for_supervised(cfg: Config, admin: Admin, enabled: list[CollectorConfig],
                        stopping: threading.Event) -> list[CollectorConfig]:
    """Wait until each enabled collector serves, or the admin reports that it failed; say why for those."""
    deadline = time.monotonic() + START_TIMEOUT
    pending, running = {c.name: c for c in enabled}, []
    while pending and time.monotonic() < deadline and not stopping.is_set() and admin.proc.poll() is None:
        try:
            states = admin.components()
        except (OSError, ValueError):
            states = {}
        for name, c in list(pending.items()):
            if wait_until_serving(None, scrape_url(c.listen), time.monotonic() + 0.2):
                running.append(pending.pop(name))
            elif name in states and not states[name]["running"] and states[name]["last_error"]:
                log = Path(cfg.admin.run_dir) / f"{name}.log"
                print(f"lmp run: collector {name} failed: {last_line(log) or states[name]['last_error']} "
                      f"({log}); the admin retries it with backoff, the others go on", file=sys.stderr)
                del pending[name]
        time.sleep(0.3)
    for name in pending:
        if not stopping.is_set():
            print(f"lmp run: collector {name} did not answer within {START_TIMEOUT:.0f} s", file=sys.stderr)
    return running


def start_exporters(cfg: Config, collectors: list[CollectorConfig], procs: dict[str, subprocess.Popen],
                    stopping: threading.Event) -> None:
    """Without the admin: start every collector's exporter into `procs` (the caller's, so that it can stop
    what started even if this is interrupted), then wait for each; drop those that exit."""
    for c in collectors:
        procs[c.name] = subprocess.Popen(lmp_command(cfg, "exporter", c.name), preexec_fn=_die_with_parent)
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


def summary(cfg: Config, admin: Admin | None, running: list[CollectorConfig], prometheus: bool) -> str:
    lines = ["", "LMP is running. Ctrl-C stops everything."]
    if admin:
        lines.append(f"  {'admin':<12} {scrape_url(cfg.admin.listen, '/')}  (the web page; the API at /api/docs)")
        if admin.password:
            lines.append(f"  {'':<12} log in as admin, password {admin.password} (shown once: change it)")
        else:
            lines.append(f"  {'':<12} log in as admin with the password shown at the first start "
                         f"(forgotten? lmp admin set-password admin)")
        lines.append(f"  {'':<12} running commands as root: {'ON' if cfg.admin.scenario_commands else 'off'} "
                     f"(admin.scenario_commands in {cfg.path}; README, Security)")
    lines += [f"  {c.name:<12} {scrape_url(c.listen)}" for c in running]
    if prometheus:
        source = "targets from the admin's service discovery" if admin else "static targets"
        lines.append(f"  {'prometheus':<12} {scrape_url(cfg.prometheus.listen, '/')}  (job {JOB}, {source})")
        lines.append(f"  {'alerts':<12} {scrape_url(cfg.prometheus.listen, '/alerts')}  "
                     f"(rules: {', '.join(rule_paths(cfg))})")
    lines += [f"  {'dashboards':<12} {DASHBOARDS}/*.json: Grafana > Dashboards > New > Import, one file at a time, "
              f"or provision the folder (README, Dashboards and alerts)"]
    return "\n".join(lines)


def run(cfg: Config) -> int:
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    enabled = [c for c in cfg.collectors.values() if c.enabled]
    tmp = Path(tempfile.mkdtemp(prefix="lmp-run-"))
    procs: dict[str, subprocess.Popen] = {}  # exporters started by `lmp run` itself (admin off)
    admin: Admin | None = None
    prometheus = None
    try:
        if cfg.admin.enabled:
            if (why := listen_error(cfg.admin.listen)) is not None:
                print(f"lmp run: the admin service cannot listen on {cfg.admin.listen}: {why} "
                      f"(is LMP already running?)", file=sys.stderr)
                return 1
            admin = Admin(cfg)
            if not wait_until_serving(admin.proc, scrape_url(cfg.admin.listen, "/api/v1/health"),
                                      time.monotonic() + ADMIN_TIMEOUT, stopping):
                if not stopping.is_set():
                    print("lmp run: the admin service did not start; see the messages above", file=sys.stderr)
                return 1
            running = wait_for_supervised(cfg, admin, enabled, stopping)
        else:
            start_exporters(cfg, enabled, procs, stopping)
            running = [c for c in enabled if c.name in procs]
            if not procs and not cfg.prometheus.enabled:
                print("lmp run: nothing is running (no collector started); see the messages above",
                      file=sys.stderr)
                return 1
        if cfg.prometheus.enabled and not stopping.is_set():
            prometheus = start_prometheus(cfg, tmp)
        if not stopping.is_set():
            print(summary(cfg, admin, running, prometheus is not None), flush=True)
        while not stopping.wait(1.0):
            for name, proc in list(procs.items()):
                if proc.poll() is not None:
                    print(f"lmp run: collector {name} exited with code {proc.returncode}", file=sys.stderr)
                    del procs[name]
            if admin and admin.proc.poll() is not None:
                print(f"lmp run: the admin service exited with code {admin.proc.returncode}; stopping",
                      file=sys.stderr)
                return 1
            if prometheus and prometheus.poll() is not None:
                print(f"lmp run: prometheus exited with code {prometheus.returncode}; see "
                      f"{cfg.prometheus.data_dir}/prometheus.log", file=sys.stderr)
                prometheus = None
    finally:
        stop([*procs.values(), *([admin.proc] if admin else []), *([prometheus] if prometheus else [])])
        if admin:  # the admin stops its exporters as it exits; should it have died first, do it here
            Supervisor(cfg.path, Path(cfg.admin.run_dir)).shutdown(stop_exporters=True)
        shutil.rmtree(tmp, ignore_errors=True)
        print("lmp run: stopped", file=sys.stderr)
    return 0
