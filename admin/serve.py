"""`lmp admin serve`: the admin service in one process, under cheroot, a production WSGI server with a
bounded pool of threads (CherryPy's; Flask's own server is for development only).

One process: under `lmp run` the admin is forked from the spawner, so it shares the interpreter's pages
with the exporters; gunicorn's arbiter would add a second process that earns nothing here."""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from exporters._lib import httpserver, webconfig
from exporters._lib.serving import parse_listen

from . import create_app
from .users import first_admin, write_service_token

THREADS = 8  # requests served at once; more wait in the listen queue


def serve(listen: str, data_dir: str, run_dir: str, config_path: Path, web_config: str | None = None) -> int:
    """web_config: the exporters' web config, whose TLS the admin takes too (its basic auth users do not
    apply: the admin has its own logins)."""
    web = None
    if web_config:
        try:
            web = webconfig.load(Path(web_config))
        except ValueError as err:
            print(f"lmp admin: {err}", file=sys.stderr)
            return 2
        web.users = {}
    app = create_app({"DATA_DIR": data_dir, "RUN_DIR": run_dir, "LMP_CONFIG": str(config_path), "AUDIT_FEED": True})
    with app.app_context():
        password = first_admin()
        write_service_token(Path(app.config["DATA_DIR"]) / "service.token")
    if password:
        print(f"lmp admin: created the first admin account: user admin, password {password}\n"
              f"           (shown once; change it with PUT /api/v1/users/me/password)", file=sys.stderr, flush=True)
    host, port = parse_listen(listen)
    server = httpserver.server(host, port, app, web, name="lmp-admin", threads=THREADS)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        server.prepare()  # binds: a port in use fails here, with its reason
    except OSError as err:
        print(f"lmp admin: cannot listen on {listen}: {err.strerror or err}", file=sys.stderr)
        return 1
    thread = threading.Thread(target=server.serve, daemon=True, name="lmp-admin-http")
    thread.start()
    stopping.wait()
    server.stop()
    app.extensions["lmp_audit_feed"].stop()
    return 0
