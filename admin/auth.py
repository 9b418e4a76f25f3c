"""JWT authentication and role checks."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask_jwt_extended import JWTManager, get_jwt_identity, verify_jwt_in_request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import abort

from .models import ROLES, RevokedToken, User, db

jwt = JWTManager()
limiter = Limiter(key_func=get_remote_address)


@jwt.token_in_blocklist_loader
def _revoked(_header: dict, payload: dict) -> bool:
    return db.session.get(RevokedToken, payload["jti"]) is not None


@jwt.user_lookup_loader
def _user(_header: dict, payload: dict) -> User | None:
    return db.session.scalar(db.select(User).filter_by(name=payload["sub"]))


def _json_401(reason: str) -> tuple[dict, int]:
    return {"code": 401, "status": "Unauthorized", "message": reason}, 401


jwt.unauthorized_loader(lambda reason: _json_401(reason))
jwt.invalid_token_loader(lambda reason: _json_401(reason))
jwt.expired_token_loader(lambda _h, _p: _json_401("the token has expired; log in again"))
jwt.revoked_token_loader(lambda _h, _p: _json_401("the token was revoked by a logout"))
jwt.user_lookup_error_loader(lambda _h, _p: _json_401("the token's user no longer exists"))


def current_user() -> User:
    user = db.session.scalar(db.select(User).filter_by(name=get_jwt_identity()))
    if user is None:
        abort(401, message="the token's user no longer exists")
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
