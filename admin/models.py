"""What the admin service keeps: users, revoked tokens and the audit log, in SQLite by default (any
SQLAlchemy URL works, PostgreSQL included)."""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import inspect, text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import CreateColumn

from . import passwords

db = SQLAlchemy()
ROLES = ("viewer", "operator", "admin")  # each may do what the ones before it may
# A user name: safe in a URL path segment and a log line as it is, whichever way the user was made.
NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def now() -> datetime:
    return datetime.now(timezone.utc)


class User(db.Model):  # type: ignore[name-defined]
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused (in a database made since)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(db.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(db.String(256))
    role: Mapped[str] = mapped_column(db.String(16))
    created_at: Mapped[datetime] = mapped_column(default=now)
    # Every token carries the credentials version it was made under; a new password, a new role or a
    # logout from everywhere changes it, which ends every token made before. Random, not counted: an
    # account made anew where an old one was (SQLite may give it the same id) never matches the old tokens.
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")

    def set_password(self, password: str) -> None:
        self.password_hash = passwords.hashed(password)
        self.end_sessions()

    def check_password(self, password: str) -> bool:
        return passwords.matches(self.password_hash, password)

    def end_sessions(self) -> None:
        self.token_version = secrets.randbits(62)


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
    detail: Mapped[str] = mapped_column(db.Text, default="", server_default="")  # whole, e.g. a command's argv


def audit(actor: str, action: str, target: str = "", detail: str = "") -> None:
    db.session.add(AuditEvent(actor=actor, action=action, target=target[:128], detail=detail))


def upgrade() -> None:
    """Add the columns a database made by an earlier LMP lacks (create_all makes missing tables, never
    missing columns). Additive only, each column with a default; a change beyond that would take a
    migration tool (Alembic)."""
    found = inspect(db.engine)
    quote = db.engine.dialect.identifier_preparer.quote
    for table in db.metadata.sorted_tables:
        have = {c["name"] for c in found.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                ddl = CreateColumn(column).compile(dialect=db.engine.dialect)
                db.session.execute(text(f"ALTER TABLE {quote(table.name)} ADD COLUMN {ddl}"))
    db.session.commit()


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
