"""`lmp admin serve`: the admin service under gunicorn, a production WSGI server (not Flask's dev server).

One worker process with threads: the service owns the exporter processes, and there must be exactly one
owner."""
from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from . import create_app
from .users import first_admin, write_service_token


class AdminServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, listen: str, config: dict[str, Any], stop_exporters_on_exit: bool = False) -> None:
        self.listen, self.config_overrides = listen, config
        self.stop_exporters_on_exit = stop_exporters_on_exit
        self.app: Flask | None = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in {"bind": self.listen, "workers": 1, "threads": 4, "accesslog": None,
                           "errorlog": "-", "loglevel": "warning", "worker_exit": self.worker_exit}.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:  # in the worker process
        app = self.app = create_app(self.config_overrides)
        with app.app_context():
            password = first_admin()
            write_service_token(Path(app.config["DATA_DIR"]) / "service.token")
        if password:
            print(f"lmp admin: created the first admin account: user admin, password {password}\n"
                  f"           (shown once; change it with PUT /api/v1/users/me/password)", file=sys.stderr, flush=True)
        return app

    def worker_exit(self, _arbiter: Any, _worker: Any) -> None:
        """The worker ends (SIGTERM to gunicorn): stop supervising. The exporters keep running for the
        next admin to adopt, unless this admin was started to take them with it (`lmp run`)."""
        supervisor = self.app.extensions.get("lmp_supervisor") if self.app else None
        if supervisor:
            # gunicorn's master sends SIGQUIT after a Ctrl-C has already reached this worker; its handler
            # would end this function half-way, leaving exporters running.
            for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
            supervisor.shutdown(stop_exporters=self.stop_exporters_on_exit)


def serve(listen: str, data_dir: str, run_dir: str, config_path: Path, supervise: bool,
          stop_exporters_on_exit: bool = False) -> int:
    config = {"SUPERVISE": supervise, "DATA_DIR": data_dir, "RUN_DIR": run_dir, "LMP_CONFIG": str(config_path)}
    AdminServer(listen, config, stop_exporters_on_exit).run()
    return 0
