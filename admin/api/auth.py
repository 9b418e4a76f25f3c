from flask import current_app
from flask.views import MethodView
from flask_jwt_extended import create_access_token, create_refresh_token, get_jwt, get_jwt_identity, jwt_required
from flask_smorest import Blueprint, abort

from ..auth import limiter
from ..models import RevokedToken, User, audit, db
from . import schemas

PREFIX = "/auth"
blp = Blueprint("auth", __name__, description="Log in, refresh the access token, log out.")


@blp.route("/login")
class Login(MethodView):
    decorators = [limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"])]

    @blp.doc(security=[])
    @blp.arguments(schemas.Login)
    @blp.response(200, schemas.Tokens)
    def post(self, body: dict) -> dict:
        user = db.session.scalar(db.select(User).filter_by(name=body["username"]))
        if user is None or not user.check_password(body["password"]):
            abort(401, message="wrong user name or password")
        audit(user.name, "login")
        db.session.commit()
        return {"access_token": create_access_token(identity=user.name),
                "refresh_token": create_refresh_token(identity=user.name)}


@blp.route("/refresh")
class Refresh(MethodView):
    @jwt_required(refresh=True)
    @blp.response(200, schemas.Tokens)
    def post(self) -> dict:
        return {"access_token": create_access_token(identity=get_jwt_identity())}


@blp.route("/logout")
class Logout(MethodView):
    @jwt_required(verify_type=False)
    @blp.response(204)
    def post(self) -> None:
        """Revoke the token sent (an access or a refresh token; log out with each to end both)."""
        db.session.add(RevokedToken(jti=get_jwt()["jti"]))
        audit(get_jwt_identity(), "logout")
        db.session.commit()
