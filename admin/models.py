"""What the admin service keeps: users, revoked tokens and the audit log, in SQLite by default (any
SQLAlchemy URL works, PostgreSQL included)."""
from __future__ import annotations

from datetime import datetime, timezone

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

db = SQLAlchemy()
ROLES = ("viewer", "operator", "admin")  # each may do what the ones before it may


def now() -> datetime:
    return datetime.now(timezone.utc)


class User(db.Model):  # type: ignore[name-defined]
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(db.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(db.String(256))
    role: Mapped[str] = mapped_column(db.String(16))
    created_at: Mapped[datetime] = mapped_column(default=now)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method="scrypt")  # a slow, salted hash

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class RevokedToken(db.Model):  # type: ignore[name-defined]
    """Tokens ended by logout: kept in the database so that a restart does not bring them back."""
    jti: Mapped[str] = mapped_column(db.String(64), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(default=now)


class AuditEvent(db.Model):  # type: ignore[name-defined]
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=now)
    actor: Mapped[str] = mapped_column(db.String(64))
    action: Mapped[str] = mapped_column(db.String(64))
    target: Mapped[str] = mapped_column(db.String(128), default="")


def audit(actor: str, action: str, target: str = "") -> None:
    db.session.add(AuditEvent(actor=actor, action=action, target=target))


class ScenarioRun(db.Model):  # type: ignore[name-defined]
    """An `lmp scenario` run started through the API; its results are files in DATA_DIR/scenarios/<id>/."""
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(db.String(8))  # run (a command) or attach (a pid)
    target: Mapped[str] = mapped_column(db.Text)  # JSON: the command's argv, or the pid
    options: Mapped[str] = mapped_column(db.Text, default="{}")  # JSON: duration, events, children, uprobes
    owner: Mapped[str] = mapped_column(db.String(64))
    status: Mapped[str] = mapped_column(db.String(16), default="running")  # running, complete, failed
    pid: Mapped[int | None] = mapped_column(default=None)  # the recorder's process
    message: Mapped[str] = mapped_column(db.Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=now)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
