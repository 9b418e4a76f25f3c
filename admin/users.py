"""Users, for the API and the host's CLI alike (`lmp admin create-user`, `set-password`, the first admin on
first start): one set of rules for names and passwords, and "never the last admin" kept under a lock."""
from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError

from . import passwords
from .models import NAME, ROLES, RevokedToken, User, audit, db

SERVICE_USER = "lmp-service"  # owns the service token (write_service_token)
# Role changes and deletes check "is this the last admin?" and then act; two admins demoting each other at
# once must not both pass the check. The service is one process, so a lock held across check and commit
# is enough, whatever the database.
_admins = threading.Lock()


class LastAdmin(Exception):
    pass


def by_name(name: str) -> User | None:
    return db.session.scalar(db.select(User).filter_by(name=name))


def invalid(name: str, password: str | None, role: str | None = None) -> str | None:
    """Why a new user (or a new password, when `name` exists) is refused, or None."""
    if not NAME.fullmatch(name):
        return f"{name!r} is not a user name: lowercase letters, digits, '_', '.' and '-', a letter first, 64 at most"
    if role is not None and role not in ROLES:
        return f"{role!r} is not a role ({', '.join(ROLES)})"
    return passwords.problem(password, name) if password is not None else None


def create(name: str, password: str, role: str, actor: str = "lmp admin", check: bool = True) -> User:
    """Add a user (in an app context); ValueError when the name is taken or the name or password is
    refused. `check=False` only for passwords nobody types (random ones this module makes)."""
    why = invalid(name, password if check else None, role)
    if why:
        raise ValueError(why)
    if by_name(name) is not None:
        raise ValueError(f"user {name!r} exists")
    user = User(name=name, role=role)
    user.set_password(password)
    db.session.add(user)
    audit(actor, "create user", name)
    db.session.commit()
    return user


def set_password(name: str, password: str, actor: str = "lmp admin") -> None:
    """Set a user's password (in an app context), which ends every token the user had; ValueError when
    there is no such user or the password is refused."""
    user = by_name(name)
    if user is None:
        raise ValueError(f"no user named {name!r}")
    why = passwords.problem(password, name)
    if why:
        raise ValueError(why)
    user.set_password(password)
    audit(actor, "set password", name)
    db.session.commit()


def _admin_count() -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(User).filter_by(role="admin")) or 0


def set_role(user: User, role: str, actor: str) -> None:
    """LastAdmin if that would leave no admin; a new role ends the user's tokens (their rights changed)."""
    with _admins:
        db.session.refresh(user)  # as committed now, not as this request first read it
        if user.role == "admin" and role != "admin" and _admin_count() == 1:
            raise LastAdmin("this is the last admin; make another admin first")
        if user.role != role:
            user.role = role
            user.end_sessions()
        audit(actor, f"set role {role}", user.name)
        db.session.commit()


def delete(user: User, actor: str) -> None:
    with _admins:
        db.session.refresh(user)
        if user.role == "admin" and _admin_count() == 1:
            raise LastAdmin("this is the last admin; make another admin first")
        name = user.name
        db.session.delete(user)
        audit(actor, "delete user", name)
        db.session.commit()


def first_admin() -> str | None:
    """When there is no user yet (but the service user), create `admin` with a random password and return
    that password (to be printed once); else None."""
    if db.session.scalar(db.select(db.func.count()).select_from(User).filter(User.name != SERVICE_USER)):
        return None
    password = secrets.token_urlsafe(12)  # 96 random bits: no dictionary has it
    create("admin", password, "admin", check=False)
    return password


def access_token(user: User, forever: bool = False) -> str:
    """An access token for the account (its id, not its name: a new account of the same name gets none of
    the old one's tokens) at its current credentials version."""
    return create_access_token(identity=str(user.id), additional_claims={"ver": user.token_version},
                               **({"expires_delta": False} if forever else {}))


def tokens(user: User) -> dict[str, str]:
    """A new session's pair: the access token, and the refresh token that gets the next ones."""
    return {"access_token": access_token(user),
            "refresh_token": create_refresh_token(identity=str(user.id), additional_claims={"ver": user.token_version})}


def write_service_token(path: Path) -> None:
    """A viewer token that never expires, for local programs that cannot log in: the local Prometheus'
    service discovery and `lmp run`. Made anew at every start into a file only root can read, revoking the
    one before, so that one such token is valid at a time; deleting the user revokes it as well."""
    user = by_name(SERVICE_USER)
    if user is None:
        user = create(SERVICE_USER, secrets.token_urlsafe(32), "viewer", check=False)  # a password nobody is told
    try:
        old = decode_token(path.read_text().strip(), allow_expired=True)
        if db.session.get(RevokedToken, old["jti"]) is None:
            db.session.add(RevokedToken(jti=old["jti"]))
            db.session.commit()
    except (OSError, PyJWTError, JWTExtendedException, KeyError):
        pass  # no token yet, or one signed with another key: nothing to revoke
    token = access_token(user, forever=True)
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
