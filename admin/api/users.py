from flask.views import MethodView
from flask_smorest import Blueprint, abort

from ..auth import current_user, role_required
from ..models import User, audit, db
from . import schemas

PREFIX = "/users"
blp = Blueprint("users", __name__, description="Users and their roles (admin only, but one's own password).")


def find(name: str) -> User:
    user = db.session.scalar(db.select(User).filter_by(name=name))
    if user is None:
        abort(404, message=f"no user named {name!r}")
    return user


def admins() -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(User).filter_by(role="admin")) or 0


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
        if db.session.scalar(db.select(User).filter_by(name=body["name"])) is not None:
            abort(409, message=f"user {body['name']!r} exists")
        user = User(name=body["name"], role=body["role"])
        user.set_password(body["password"])
        db.session.add(user)
        audit(current_user().name, "create user", user.name)
        db.session.commit()
        return user


@blp.route("/<string:name>")
class OneUser(MethodView):
    @role_required("admin")
    @blp.arguments(schemas.RoleChange)
    @blp.response(200, schemas.User)
    def patch(self, body: dict, name: str) -> User:
        user = find(name)
        if user.role == "admin" and body["role"] != "admin" and admins() == 1:
            abort(409, message="this is the last admin; make another admin first")
        user.role = body["role"]
        audit(current_user().name, f"set role {body['role']}", name)
        db.session.commit()
        return user

    @role_required("admin")
    @blp.response(204)
    def delete(self, name: str) -> None:
        user = find(name)
        if user.role == "admin" and admins() == 1:
            abort(409, message="this is the last admin; make another admin first")
        db.session.delete(user)
        audit(current_user().name, "delete user", name)
        db.session.commit()


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
    @blp.response(204)
    def put(self, body: dict) -> None:
        user = current_user()
        if not user.check_password(body["old_password"]):
            abort(403, message="the old password is wrong")
        user.set_password(body["new_password"])
        audit(user.name, "change own password")
        db.session.commit()
