"""`lmp admin serve`: the admin service under gunicorn, a production WSGI server (not Flask's dev server).

One worker process with threads: the service will own the exporter processes, and there must be exactly
one owner."""
from __future__ import annotations

import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from . import create_app
from .users import first_admin


class AdminServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, listen: str, config: dict[str, Any] | None = None) -> None:
        self.listen, self.config_overrides = listen, config or {}
        super().__init__()

    def load_config(self) -> None:
        for key, value in {"bind": self.listen, "workers": 1, "threads": 4, "accesslog": None,
                           "errorlog": "-", "loglevel": "warning"}.items():
            self.cfg.set(key, value)

    def load(self):  # type: ignore[no-untyped-def]
        app = create_app(self.config_overrides)
        with app.app_context():
            password = first_admin()
        if password:
            print(f"lmp admin: created the first admin account: user admin, password {password}\n"
                  f"           (shown once; change it with PUT /api/v1/users/me/password)", file=sys.stderr, flush=True)
        return app


def serve(listen: str, data_dir: str | None = None, supervise: bool = False) -> int:
    config: dict[str, Any] = {"SUPERVISE": supervise}
    if data_dir:
        config["DATA_DIR"] = data_dir
    AdminServer(listen, config).run()
    return 0
