"""Creating users outside the API: `lmp admin create-user`, and the first admin on first start."""
from __future__ import annotations

import secrets

from .models import User, audit, db


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


def first_admin() -> str | None:
    """When there is no user at all, create `admin` with a random password and return that password
    (to be printed once); else None."""
    if db.session.scalar(db.select(db.func.count()).select_from(User)):
        return None
    password = secrets.token_urlsafe(12)
    create("admin", password, "admin")
    return password
