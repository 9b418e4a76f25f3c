"""`lmp run` with a web config: the service user through which LMP's own processes (its launcher, the
admin, the local Prometheus) reach exporters that ask for basic auth.

Its password is random, made at each start and kept 0600 in the run directory; its bcrypt hash joins the
operator's users in the effective web config the exporters read (also in the run directory, 0600). The
operator's own file is never written."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from exporters._lib import webconfig
from exporters._lib.serving import PASSWORD_FILE, SERVICE_USER, WEB_FILE, Reach

BCRYPT_COST = 10  # paid once per exporter start: the exporters remember a credential that passed


def write_private(path: Path, text: str) -> None:
    """Replace `path` with a file only root can read, never readable by others even for a moment."""
    partial = path.with_name(f".{path.name}.tmp")
    partial.unlink(missing_ok=True)
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    partial.replace(path)


def prepare(web_config: str | None, run_dir: Path) -> tuple[Path | None, Reach]:
    """The effective web config for the exporters (None: plain HTTP) and how LMP reaches them. A bad web
    config raises YamlError (file:line: reason)."""
    web_file, password_file = run_dir / WEB_FILE, run_dir / PASSWORD_FILE
    if web_config is None:
        web_file.unlink(missing_ok=True)  # left by a run that had one: the admin must not use it now
        password_file.unlink(missing_ok=True)
        return None, Reach()
    import bcrypt

    web = webconfig.load(Path(web_config))
    password = None
    if web.users:  # auth asked for; with TLS alone, nobody needs a password
        password = secrets.token_urlsafe(24)
        web.users[SERVICE_USER] = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
        write_private(password_file, password + "\n")
    else:
        password_file.unlink(missing_ok=True)
    write_private(web_file, json.dumps(web.plain(), indent=2))  # JSON is YAML
    return web_file, Reach(str(web.tls.cert_file) if web.tls else None, password)
