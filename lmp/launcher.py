"""What `lmp run` does once its spawner is forked: read the config, have the supervisor start the admin and
the exporters, start Prometheus, print where everything is, and then relay the admin's messages, watch
the config and the children, and stop everything on Ctrl-C. One thread: a select() loop."""
from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from exporters._lib import build, paths
from exporters._lib.serving import PASSWORD_FILE, SERVICE_USER, Reach, answers, parse_listen, scrape_url

from . import config as configs
from . import prometheus, webservice
from .spawner import Spawner
from .supervisor import ADMIN, Supervisor

START_TIMEOUT = 60.0  # seconds for an exporter to load, attach and answer its first scrape
PASSWORD_LINE = "created the first admin account"


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


def last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def built(cfg: configs.Config) -> None:
    """Build the enabled collectors whose objects are missing or out of date (`make run` has usually done
    it), in a `lmp build` of its own; a failure is said there, and that collector fails to start."""
    from exporters._lib import catalog

    stale = [c.name for c in cfg.collectors.values() if c.enabled and build.stale(catalog.load(c.name, check=False).source)]
    if stale and shutil.which("clang"):
        subprocess.run([sys.executable, "-m", "lmp", "--config", str(cfg.path), "build", *stale])


class Launcher:
    def __init__(self, spawner: Spawner, config_path: Path | None, no_prometheus: bool) -> None:
        self.spawner = spawner
        self.cfg = configs.load_in_child(config_path)
        if no_prometheus:  # a Prometheus of its own runs elsewhere (docker-compose.yml, a fleet)
            self.cfg.prometheus.enabled = False
        self.stopping = False
        self.password: str | None = None
        self.prometheus: subprocess.Popen | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="lmp-run-"))
        self.partial = b""  # the admin's stderr, up to its last newline
        self.admit: Callable[[str], bool] = lambda name: True  # which children may start now (see start)
        admin = self.cfg.admin
        admin_args = {"listen": admin.listen, "data_dir": admin.data_dir, "run_dir": admin.run_dir,
                      "config": str(self.cfg.path), "web_config": self.cfg.web_config} if admin.enabled else None
        run_dir = Path(admin.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        # Made once per run: a web config edited while LMP runs takes effect at the next `lmp run`.
        web_file, self.reach = webservice.prepare(self.cfg.web_config, run_dir)
        self.admin_reach = Reach(self.reach.ca_file)  # TLS only: the admin has logins of its own
        self.supervisor = Supervisor(self.cfg, spawner, admin_args, str(web_file) if web_file else None)
        self.wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_w)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)  # handled from the wakeup fd, in the loop

    def run(self) -> int:
        try:
            if self.cfg.admin.enabled and (why := listen_error(self.cfg.admin.listen)) is not None:
                print(f"lmp run: the admin service cannot listen on {self.cfg.admin.listen}: {why} "
                      f"(is LMP already running?)", file=sys.stderr)
                return 1
            built(self.cfg)
            running = self.start()
            if self.stopping:
                return 0
            if running is None:
                return 1
            if self.cfg.prometheus.enabled:
                self.prometheus = prometheus.start(self.cfg, self.tmp, self.reach)
            print(summary(self.cfg, self.password, running, self.prometheus is not None, self.reach), flush=True)
            self.loop()
            return 0
        finally:
            self.supervisor.stop_all()
            if self.prometheus and self.prometheus.poll() is None:
                self.prometheus.terminate()
                self.prometheus.wait()
            shutil.rmtree(self.tmp, ignore_errors=True)
            print("lmp run: stopped", file=sys.stderr)

    def start(self) -> list[configs.CollectorConfig] | None:
        """Start the exporters, as many at once as there are CPUs (loading a program keeps a CPU busy for
        tens of ms, so more at once only makes each later), then the admin; wait until each serves, or say
        why one did not (the others go on). None when the admin did not start: nothing is managed then."""
        deadline = time.monotonic() + START_TIMEOUT
        enabled = [c for c in self.cfg.collectors.values() if c.enabled]
        pending, running = {c.name: c for c in enabled}, []
        admin = self.cfg.admin.enabled
        wave = len(os.sched_getaffinity(0))

        def started(name: str) -> bool:
            child = self.supervisor.children.get(name)
            return child is not None and child.pid is not None

        def admit(name: str) -> bool:
            if name == ADMIN:
                return not pending
            return name not in pending or sum(map(started, pending)) < wave

        # Every reconcile until all run goes through admit, the one on a child's exit (step) too.
        self.admit = admit
        while (pending or admin) and time.monotonic() < deadline and not self.stopping:
            self.supervisor.reconcile(admit=admit)
            self.step(0.02)
            for name in [n for n in pending if n in self.supervisor.children]:
                c, child = pending[name], self.supervisor.children[name]
                if child.pid is not None and answers(self.reach.url(c.listen), 0.2, self.reach):
                    running.append(pending.pop(name))
                elif child.last_error:
                    log = self.supervisor.run_dir / f"{name}.log"
                    print(f"lmp run: collector {name} failed: {last_line(log) or child.last_error} ({log}); "
                          f"it is retried with backoff, the others go on", file=sys.stderr)
                    del pending[name]
            if admin and not pending and answers(self.admin_reach.url(self.cfg.admin.listen, "/api/v1/health"), 0.2,
                                                 self.admin_reach):
                admin = False
            elif admin and (child := self.supervisor.children.get(ADMIN)) and child.last_error:
                print(f"lmp run: the admin service did not start ({child.last_error}); see the messages above",
                      file=sys.stderr)
                return None
        if admin and not self.stopping:
            print(f"lmp run: the admin service did not answer within {START_TIMEOUT:.0f} s", file=sys.stderr)
            self.admit = lambda name: True
            return None
        self.admit = lambda name: True
        for name in pending:
            if not self.stopping:
                print(f"lmp run: collector {name} did not answer within {START_TIMEOUT:.0f} s", file=sys.stderr)
        return running

    def loop(self) -> None:
        last = 0.0
        while not self.stopping:
            self.step(1.0)
            if time.monotonic() - last >= 1.0:
                last = time.monotonic()
                self.supervisor.reconcile()
                if self.prometheus and self.prometheus.poll() is not None:
                    print(f"lmp run: prometheus exited with code {self.prometheus.returncode}; see "
                          f"{self.cfg.prometheus.data_dir}/prometheus.log", file=sys.stderr)
                    self.prometheus = None

    def step(self, timeout: float) -> None:
        """Wait up to `timeout` for a signal, a child's exit or the admin's messages, and act on them."""
        fds = [self.wakeup_r, self.spawner.fileno()]
        admin_err = self.supervisor.admin_stderr
        if admin_err is not None:
            fds.append(admin_err)
        ready, _, _ = select.select(fds, [], [], timeout)
        if self.wakeup_r in ready:
            signals = os.read(self.wakeup_r, 512)
            if signal.SIGINT in signals or signal.SIGTERM in signals:
                self.stopping = True
            if signal.SIGHUP in signals:  # the admin edited the config
                self.supervisor.reconcile(force=True)
        if self.spawner.fileno() in ready:
            self.supervisor.reconcile(admit=self.admit)  # a child exited: restart it (after its backoff)
        if admin_err is not None and admin_err in ready:
            self.relay(admin_err)

    def relay(self, fd: int) -> None:
        """The admin's stderr to ours, line by line; the first admin's password is kept for the summary."""
        data = os.read(fd, 65536)
        if not data:  # the admin exited; a restarted one gets a new pipe
            os.close(fd)
            if self.supervisor.admin_stderr == fd:
                self.supervisor.admin_stderr = None
            return
        *lines, self.partial = (self.partial + data).split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace")
            print(line, file=sys.stderr, flush=True)
            if PASSWORD_LINE in line:
                self.password = line.rsplit("password ", 1)[1].strip()


def summary(cfg: configs.Config, password: str | None, running: list[configs.CollectorConfig],
            prometheus_on: bool, reach: Reach = Reach()) -> str:
    """What `lmp run` prints once everything answers: where each part is, how to log in."""
    lines = ["", "LMP is running. Ctrl-C stops everything."]
    if cfg.admin.enabled:
        lines.append(f"  {'admin':<12} {reach.url(cfg.admin.listen, '/')}  (the web page; the API at /api/docs)")
        if password:
            lines.append(f"  {'':<12} log in as admin, password {password} (shown once: change it)")
        else:
            lines.append(f"  {'':<12} log in as admin with the password shown at the first start "
                         f"(forgotten? lmp admin set-password admin)")
        lines.append(f"  {'':<12} running commands as root: {'ON' if cfg.admin.scenario_commands else 'off'} "
                     f"(admin.scenario_commands in {cfg.path}; README, Security)")
    lines += [f"  {c.name:<12} {reach.url(c.listen)}" for c in running]
    if reach.password is not None:
        lines.append(f"  {'':<12} basic auth ({cfg.web_config}); LMP's own user {SERVICE_USER}, its password in "
                     f"{Path(cfg.admin.run_dir) / PASSWORD_FILE}")
    if prometheus_on:
        source = "targets from the admin's service discovery" if cfg.admin.enabled else "static targets"
        lines.append(f"  {'prometheus':<12} {scrape_url(cfg.prometheus.listen, '/')}  (job {prometheus.JOB}, "
                     f"{source})")
        lines.append(f"  {'alerts':<12} {scrape_url(cfg.prometheus.listen, '/alerts')}  "
                     f"(rules: {', '.join(prometheus.rule_paths(cfg))})")
    lines += [f"  {'dashboards':<12} {paths.GRAFANA_DIR}/*.json: Grafana > Dashboards > New > Import, one file at a "
              f"time, or provision the folder (README, Dashboards and alerts)"]
    return "\n".join(lines)
