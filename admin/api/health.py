from flask.views import MethodView
from flask_smorest import Blueprint

PREFIX = "/health"
blp = Blueprint("health", __name__, description="Liveness: answers without a token.")


@blp.route("")
class Health(MethodView):
    @blp.doc(security=[])
    def get(self) -> dict:
        return {"status": "ok"}
