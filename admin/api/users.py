from flask.views import MethodView
from flask_smorest import Blueprint, abort

from .. import throttle, users
from ..auth import current_user, role_required
from ..models import User, audit, db
from ..users import tokens
from . import schemas

PREFIX = "/users"
blp = Blueprint("users", __name__, description="Users and their roles (admin only, but one's own password).")


def find(name: str) -> User:
    user = users.by_name(name)
    if user is None:
        abort(404, message=f"no user named {name!r}")
    return user


@blp.route("")
class Users(MethodView):
    @role_required("admin")
    @blp.response(200, schemas.User(many=True))
    def get(self) -> list[User]:
        return list(db.session.scalars(db.select(User).order_by(User.name)))

    @role_required("admin")
    @blp.arguments(schemas.NewUser)
    @blp.response(201, schemas.User)
    def post(self, body: dict) -> User:
        if users.by_name(body["name"]) is not None:
            abort(409, message=f"user {body['name']!r} exists")
        why = users.invalid(body["name"], body["password"], body["role"])
        if why:
            abort(422, message=why, errors={"json": {"password": [why]}})
        try:
            return users.create(body["name"], body["password"], body["role"], actor=current_user().name)
        except ValueError as err:  # taken meanwhile by a request racing this one
            abort(409, message=str(err))
        raise AssertionError  # not reached: abort raises


@blp.route("/<string:name>")
class OneUser(MethodView):
    @role_required("admin")
    @blp.arguments(schemas.RoleChange)
    @blp.response(200, schemas.User)
    def patch(self, body: dict, name: str) -> User:
        """Change a user's role; every token of theirs ends (log in again with the new role)."""
        user = find(name)
        try:
            users.set_role(user, body["role"], actor=current_user().name)
        except users.LastAdmin as err:
            abort(409, message=str(err))
        return user

    @role_required("admin")
    @blp.response(204)
    @blp.alt_response(409, description="The last admin, or one's own account.")
    def delete(self, name: str) -> None:
        me = current_user()
        user = find(name)
        if user.id == me.id:
            abort(409, message="you cannot delete your own account; another admin can")
        try:
            users.delete(user, actor=me.name)
        except users.LastAdmin as err:
            abort(409, message=str(err))


@blp.route("/me")
class Me(MethodView):
    @role_required("viewer")
    @blp.response(200, schemas.User)
    def get(self) -> User:
        """Who the token belongs to, and the role the web page shows or hides controls by."""
        return current_user()


@blp.route("/me/password")
class OwnPassword(MethodView):
    @role_required("viewer")
    @blp.arguments(schemas.PasswordChange)
    @blp.response(200, schemas.Tokens)
    @blp.alt_response(429, description="Too many wrong old passwords (see Retry-After).")
    def put(self, body: dict) -> dict:
        """Change one's own password. Every token made before ends, this one included; the answer holds
        new tokens for the session that made the change."""
        user = current_user()
        throttle.check("password", str(user.id))
        if not user.check_password(body["old_password"]):
            throttle.failed("password", str(user.id))
            abort(403, message="the old password is wrong")
        why = users.invalid(user.name, body["new_password"])
        if why:
            abort(422, message=why, errors={"json": {"new_password": [why]}})
        user.set_password(body["new_password"])
        audit(user.name, "change own password")
        db.session.commit()
        return tokens(user)
