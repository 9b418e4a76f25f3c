"""config/lmp.yaml as a resource: read it with its ETag, replace it with If-Match. A bad edit is refused
with its line and reason, and the file on disk stays as it was."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from exporters._lib.yamlfile import YamlError
from lmp import config as configs

from ..auth import current_user, role_required
from ..models import audit, db

PREFIX = "/config"
blp = Blueprint("config", __name__, description="The YAML configuration (read: viewer; replace: admin).")


def path() -> Path:
    return Path(current_app.config.get("LMP_CONFIG") or configs.path_from_env())


def etag(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def write_atomically(target: Path, text: str) -> None:
    """Temporary file, fsync, rename: a reader sees the old file or the new one, never half of one.
    The previous version is kept as <name>.bak."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if target.exists():
            shutil.copy2(target, target.with_name(target.name + ".bak"))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_enabled(name: str, enabled: bool) -> None:
    """Turn a collector on or off in the config file, keeping its comments and layout."""
    edit(name, lambda entry: entry.__setitem__("enabled", enabled))


def edit(name: str, change: Callable[[Any], None]) -> None:
    """Change collector `name`'s entry in the config file, keeping comments and layout; the whole file is
    checked before it replaces the old one (422 with the line and reason if it would be wrong)."""
    from ruamel.yaml import YAML
    from io import StringIO
    target = path()
    yaml = YAML(typ="rt")
    doc = yaml.load(target.read_text())
    collectors = doc.get("collectors") or {}
    if name not in collectors:
        abort(404, message=f"{name} has no entry in {target.name}; add one with its listen address first")
    change(collectors[name])
    out = StringIO()
    yaml.dump(doc, out)
    candidate = target.with_name(f".{target.name}.check")
    candidate.write_text(out.getvalue())
    try:
        configs.load(candidate)
    except YamlError as err:
        abort(422, message=str(err).replace(str(candidate), target.name))
    finally:
        candidate.unlink(missing_ok=True)
    write_atomically(target, out.getvalue())


# The body is a YAML mapping; its full schema is config/lmp.schema.json (JSON Schema 2020-12, which
# OpenAPI 3.0 cannot embed), checked on every PUT.
YAML_BODY = {"content": {"application/yaml": {"schema": {"type": "object"}}}}
ETAG_HEADER = {"ETag": {"description": "The version of the config, for If-Match.", "schema": {"type": "string"}}}
ERROR = {"$ref": "#/components/schemas/Error"}
REFUSED = {"content": {"application/json": {"schema": ERROR}}}


@blp.route("")
class Config(MethodView):
    @role_required("viewer")
    @blp.doc(responses={"200": {"description": "The config file as it is on disk.", **YAML_BODY,
                                "headers": ETAG_HEADER}})
    def get(self):  # type: ignore[no-untyped-def]
        text = path().read_text()
        return text, 200, {"Content-Type": "application/yaml", "ETag": f'"{etag(text)}"'}

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
        target = path()
        current = target.read_text()
        match = request.headers.get("If-Match", "").strip('"')
        if not match:
            abort(428, message="send If-Match with the ETag of the config you edited (GET it first)")
        if match != etag(current):
            abort(412, message="the config changed since you read it; GET it again and redo your edit")
        text = request.get_data(as_text=True)
        candidate = target.with_name(f".{target.name}.check")
        candidate.write_text(text)
        try:
            configs.load(candidate)
        except YamlError as err:
            abort(422, message=str(err).replace(str(candidate), target.name), errors={"line": err.line, "reason": err.reason})
        finally:
            candidate.unlink(missing_ok=True)
        write_atomically(target, text)
        audit(current_user().name, "edit config")
        db.session.commit()
        return "", 204, {"ETag": f'"{etag(text)}"'}
