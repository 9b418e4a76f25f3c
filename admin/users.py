"""Creating users outside the API: `lmp admin create-user`, and the first admin on first start."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask_jwt_extended import create_access_token, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError

from .models import RevokedToken, User, audit, db

SERVICE_USER = "lmp-service"  # owns the service token (write_service_token)


def create(name: str, password: str, role: str) -> User:
    """Add a user (in an app context); ValueError when the name is taken."""
    if db.session.scalar(db.select(User).filter_by(name=name)) is not None:
        raise ValueError(f"user {name!r} exists")
    user = User(name=name, role=role)
    user.set_password(password)
    db.session.add(user)
    audit("lmp admin", "create user", name)
    db.session.commit()
    return user


def set_password(name: str, password: str) -> None:
    """Set a user's password (in an app context); ValueError when there is no such user."""
    user = db.session.scalar(db.select(User).filter_by(name=name))
    if user is None:
        raise ValueError(f"no user named {name!r}")
    user.set_password(password)
    audit("lmp admin", "set password", name)
    db.session.commit()


def first_admin() -> str | None:
    """When there is no user yet (but the service user), create `admin` with a random password and return
    that password (to be printed once); else None."""
    if db.session.scalar(db.select(db.func.count()).select_from(User).filter(User.name != SERVICE_USER)):
        return None
    password = secrets.token_urlsafe(12)
    create("admin", password, "admin")
    return password


def write_service_token(path: Path) -> None:
    """A viewer token that never expires, for local programs that cannot log in: the local Prometheus'
    service discovery and `lmp run`. Made anew at every start into a file only root can read, revoking the
    one before, so that one such token is valid at a time; deleting the user revokes it as well."""
    if db.session.scalar(db.select(User).filter_by(name=SERVICE_USER)) is None:
        create(SERVICE_USER, secrets.token_urlsafe(32), "viewer")  # a password nobody is told
    try:
        old = decode_token(path.read_text().strip(), allow_expired=True)
        if db.session.get(RevokedToken, old["jti"]) is None:
            db.session.add(RevokedToken(jti=old["jti"]))
            db.session.commit()
    except (OSError, PyJWTError, JWTExtendedException, KeyError):
        pass  # no token yet, or one signed with another key: nothing to revoke
    token = create_access_token(identity=SERVICE_USER, expires_delta=False)
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
