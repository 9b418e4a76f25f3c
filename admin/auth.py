"""JWT authentication and role checks.

A token names the account by its id and carries the account's credentials version (`ver`): it is good
while the account exists with that version. A password change, a role change, a delete and a logout
from everywhere move the version on, which ends every older token at once; a logout ends one token
(its id is kept in the database, so a restart does not bring it back)."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask_jwt_extended import JWTManager, get_current_user, verify_jwt_in_request
from flask_smorest import abort

from .models import ROLES, RevokedToken, User, db

jwt = JWTManager()
ENDED = "the token is no longer valid (its user was deleted, or changed password or role, or logged out everywhere)"


@jwt.token_in_blocklist_loader
def _revoked(_header: dict, payload: dict) -> bool:
    return db.session.get(RevokedToken, payload["jti"]) is not None


@jwt.user_lookup_loader
def _user(_header: dict, payload: dict) -> User | None:
    try:
        user = db.session.get(User, int(payload["sub"]))
    except (TypeError, ValueError):  # a token of an earlier LMP, which named the user: log in again
        return None
    if user is None or payload.get("ver") != user.token_version:
        return None
    return user


def _json_401(reason: str) -> tuple[dict, int]:
    return {"code": 401, "status": "Unauthorized", "message": reason}, 401


jwt.unauthorized_loader(lambda reason: _json_401(reason))
jwt.invalid_token_loader(lambda reason: _json_401(reason))
jwt.expired_token_loader(lambda _h, _p: _json_401("the token has expired; log in again"))
jwt.revoked_token_loader(lambda _h, _p: _json_401("the token was revoked by a logout"))
jwt.user_lookup_error_loader(lambda _h, _p: _json_401(f"{ENDED}; log in again"))


def current_user() -> User:
    """The token's account, as loaded when the token was checked (its role read anew on every request)."""
    user = get_current_user()
    if user is None:
        abort(401, message=f"{ENDED}; log in again")
    return user


def role_required(role: str) -> Callable:
    """A valid access token of a user with `role` or a higher one; 401 without, 403 below it."""
    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            verify_jwt_in_request()
            if ROLES.index(current_user().role) < ROLES.index(role):
                abort(403, message=f"this needs the {role} role")
            return view(*args, **kwargs)
        return wrapper
    return decorate
