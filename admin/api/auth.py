from flask.views import MethodView
from flask_jwt_extended import get_jwt, jwt_required
from flask_smorest import Blueprint, abort

from .. import passwords, throttle
from ..auth import current_user
from ..models import RevokedToken, audit, db
from ..users import access_token, by_name, tokens
from . import schemas

PREFIX = "/auth"
blp = Blueprint("auth", __name__, description="Log in, refresh the access token, log out (one token, or all of "
                                               "one's tokens).")


@blp.route("/login")
class Login(MethodView):
    @blp.doc(security=[])
    @blp.arguments(schemas.Login)
    @blp.response(200, schemas.Tokens)
    @blp.alt_response(429, description="Too many failed logins for this name (see Retry-After).")
    def post(self, body: dict) -> dict:
        name = body["username"]
        throttle.check("login", name)
        user = by_name(name)
        # An unknown name is hashed against too, so that it takes as long as a wrong password.
        if not passwords.matches(user.password_hash if user else None, body["password"]) or user is None:
            throttle.failed("login", name)
            abort(401, message="wrong user name or password")
        audit(user.name, "login")
        db.session.commit()
        return tokens(user)


@blp.route("/refresh")
class Refresh(MethodView):
    @jwt_required(refresh=True)
    @blp.response(200, schemas.Tokens)
    def post(self) -> dict:
        return {"access_token": access_token(current_user())}


@blp.route("/logout")
class Logout(MethodView):
    @jwt_required(verify_type=False)
    @blp.response(204)
    def post(self) -> None:
        """Revoke the token sent (an access or a refresh token; log out with each to end both)."""
        db.session.add(RevokedToken(jti=get_jwt()["jti"]))
        audit(current_user().name, "logout")
        db.session.commit()


@blp.route("/logout-all")
class LogoutEverywhere(MethodView):
    @jwt_required(verify_type=False)
    @blp.response(204)
    def post(self) -> None:
        """End every token of the token's user, on every device: access and refresh tokens alike."""
        user = current_user()
        user.end_sessions()
        audit(user.name, "logout everywhere")
        db.session.commit()
