"""LMP's admin service: users and roles, JWT login, the component catalog, as a JSON API under /api/v1.

Flask's app factory (see Flask's tutorial, flaskr/__init__.py); one blueprint per resource."""
from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask_smorest import Api

from lmp.config import path_from_env

from . import bodies, configfile, errors, headers
from .auth import jwt
from .models import db, upgrade
from .throttle import limiter

DEFAULTS: dict[str, Any] = {
    "DATA_DIR": "/var/lib/lmp",
    "API_TITLE": "LMP admin",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
    "JWT_ACCESS_TOKEN_EXPIRES": 15 * 60,
    "JWT_REFRESH_TOKEN_EXPIRES": 30 * 24 * 3600,
    "MAX_CONTENT_LENGTH": 1 << 20,  # a config file or a user is kilobytes; refuse megabytes with 413
    "RATELIMIT_STORAGE_URI": "memory://",  # failed logins and password changes (admin/throttle.py)
    # Every operation but login and health takes a Bearer token: so the document says, and /api/docs
    # offers an "Authorize" button for it.
    "API_SPEC_OPTIONS": {
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"bearer": []}],
    },
}


MIN_KEY_LENGTH = 32  # HS256 signs with SHA-256: a key shorter than its 256 bits is the weak point (RFC 7518, 3.2)


def signing_key(data_dir: Path) -> str:
    """The JWT signing key: $LMP_JWT_SECRET_KEY, else a random key made on first start in a file only
    root can read. Never in the repository."""
    if os.environ.get("LMP_JWT_SECRET_KEY"):
        key = os.environ["LMP_JWT_SECRET_KEY"]
        if len(key) < MIN_KEY_LENGTH:
            raise ValueError(f"LMP_JWT_SECRET_KEY has {len(key)} characters; it needs {MIN_KEY_LENGTH} or more "
                             f"(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(48))')")
        return key
    path = data_dir / "jwt.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def private(data_dir: Path, uri: str) -> None:
    """The data directory 0700 and its secrets 0600, whoever made them and with whatever umask: `lmp run`
    may have made the directory first (for Prometheus' data), 0755. SQLite creates its file with the
    process' umask, so the file is made here first; its journal files take the file's mode."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    files = [data_dir / "jwt.key", data_dir / "service.token"]
    if uri.startswith("sqlite:///") and ":memory:" not in uri:
        database = Path(uri.removeprefix("sqlite:///").split("?")[0])
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
        files.append(database)
    for path in files:
        if path.exists():
            os.chmod(path, 0o600)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("LMP_ADMIN")  # e.g. LMP_ADMIN_DATA_DIR, LMP_ADMIN_SQLALCHEMY_DATABASE_URI
    app.config.update(config or {})
    data_dir = Path(app.config["DATA_DIR"])
    app.config.setdefault("SQLALCHEMY_DATABASE_URI", f"sqlite:///{data_dir / 'admin.db'}")
    private(data_dir, app.config["SQLALCHEMY_DATABASE_URI"])
    app.config.setdefault("JWT_SECRET_KEY", signing_key(data_dir))
    configfile.clean(Path(app.config.get("LMP_CONFIG") or path_from_env()))  # a killed write's leftovers

    db.init_app(app)
    jwt.init_app(app)
    limiter.init_app(app)
    bodies.install(app)
    headers.install(app)
    with app.app_context():
        db.create_all()
        upgrade()

    from .api import audit, auth, charts, components, config, health, policy, scenarios, sd, top, users
    api = Api(app)
    for module in (health, auth, users, components, config, audit, sd, charts, policy, scenarios, top):
        api.register_blueprint(module.blp, url_prefix=f"/api/v1{module.PREFIX}")
    from . import pages, web
    app.register_blueprint(pages.blp)
    app.register_blueprint(web.blp)
    errors.register(app)
    if app.config.get("AUDIT_FEED"):  # `lmp admin serve`: function components' events into the audit log
        from .audit_feed import AuditFeed
        app.extensions["lmp_audit_feed"] = AuditFeed(app)
    return app
