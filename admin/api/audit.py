from flask.views import MethodView
from flask_smorest import Blueprint

from ..auth import role_required
from ..models import AuditEvent, db
from . import schemas

PREFIX = "/audit"
blp = Blueprint("audit", __name__, description="Who changed what, and when (admin only), newest first.")


@blp.route("")
class Audit(MethodView):
    @role_required("admin")
    @blp.arguments(schemas.AuditQuery, location="query")
    @blp.response(200, schemas.AuditEvent(many=True))
    def get(self, query: dict) -> list[AuditEvent]:
        return list(db.session.scalars(db.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(query["limit"])))
