"""config/lmp.yaml as a resource: read it with its ETag, replace it with If-Match. A bad edit is refused
with its line and reason, and the file on disk stays as it was."""
from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from exporters._lib import yamlfile
from exporters._lib.yamlfile import YamlError
from lmp import config as configs

from .. import configfile
from ..auth import current_user, role_required
from ..models import audit, db
from .schemas import REFUSED

PREFIX = "/config"
blp = Blueprint("config", __name__, description="The YAML configuration (read: viewer; replace: admin).")


def keep_commands_switch(current: configs.Config | None, candidate: configs.Config, text: str) -> None:
    """The API may turn command runs off, never on: that takes root on the host (an admin token alone
    must not be worth root)."""
    if candidate.admin.scenario_commands and not (current and current.admin.scenario_commands):
        line = yamlfile.line_of(yamlfile.parse(text, "lmp.yaml"), ["admin", "scenario_commands"])
        raise configfile.Refused(YamlError("lmp.yaml", line, "admin.scenario_commands: only root on the host "
                                           "can turn command runs on, by editing the file; the API cannot"))


def keep_root_settings(current: configs.Config | None, candidate: configs.Config, text: str) -> None:
    """What only root on the host may change: command runs (on), and the web config, whose TLS and basic
    auth guard the exporters on the network (an API that could drop it could open them to anyone)."""
    keep_commands_switch(current, candidate, text)
    if current is not None and candidate.web_config != current.web_config:
        doc = yamlfile.parse(text, "lmp.yaml")
        line = yamlfile.line_of(doc, ["web_config"]) if "web_config" in doc else None
        raise configfile.Refused(YamlError("lmp.yaml", line, "web_config: only root on the host can change the "
                                           "web config (TLS and basic auth), by editing the file; the API cannot"))


# The body is a YAML mapping; its full schema is config/lmp.schema.json (JSON Schema 2020-12, which
# OpenAPI 3.0 cannot embed), checked on every PUT.
YAML_BODY = {"content": {"application/yaml": {"schema": {"type": "object"}}}}
ETAG_HEADER = {"ETag": {"description": "The version of the config, for If-Match.", "schema": {"type": "string"}}}


@blp.route("")
class Config(MethodView):
    @role_required("viewer")
    @blp.doc(responses={"200": {"description": "The config file as it is on disk.", **YAML_BODY,
                                "headers": ETAG_HEADER}})
    def get(self):  # type: ignore[no-untyped-def]
        try:
            text = configfile.path().read_text()
        except OSError as err:
            raise YamlError(configfile.path(), None, err.strerror or str(err)) from None  # a 409, see errors.py
        return text, 200, {"Content-Type": "application/yaml", "ETag": f'"{configfile.etag(text)}"'}

    @role_required("admin")
    @blp.doc(
        parameters=[{"in": "header", "name": "If-Match", "required": False, "schema": {"type": "string"},
                     "description": "The ETag of the config this edit started from (428 without, 412 if stale)."}],
        requestBody={"required": True, "description": "The whole new config file.", **YAML_BODY},
        responses={"204": {"description": "Saved; the supervisor follows it.", "headers": ETAG_HEADER},
                   "412": {"description": "The config changed since it was read.", **REFUSED},
                   "422": {"description": "Refused: the line and the reason; nothing was saved.", **REFUSED},
                   "428": {"description": "No If-Match header.", **REFUSED}})
    def put(self):  # type: ignore[no-untyped-def]
        if not request.if_match:
            abort(428, message="send If-Match with the ETag of the config you edited (GET it first)")
        text = request.get_data(as_text=True)
        try:
            tag = configfile.replace(configfile.path(), text, request.if_match.contains, keep_root_settings)
        except configfile.Stale:
            abort(412, message="the config changed since you read it; GET it again and redo your edit")
        except configfile.Refused as err:
            abort(422, message=str(err), errors={"line": err.error.line, "reason": err.error.reason})
        audit(current_user().name, "edit config")
        db.session.commit()
        return "", 204, {"ETag": f'"{tag}"'}
