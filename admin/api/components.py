"""The component catalog: every collector as its own spec describes it, and whether it runs here."""
from pathlib import Path

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from exporters._lib import catalog
from exporters._lib.spec import Spec
from lmp import config as configs
from lmp.cli import can_run

from ..auth import role_required
from . import schemas

PREFIX = "/components"
blp = Blueprint("components", __name__, description="The collectors: what each measures, and its state.")


def describe(spec: Spec, cfg: configs.Config) -> dict:
    ok, why = can_run(spec)
    configured = cfg.collectors.get(spec.name)
    return {
        "name": spec.name, "kind": spec.kind, "description": spec.summary,
        "hooks": [*spec.tracepoints, *spec.raw_tracepoints],
        "metrics": [{"name": m.name, "type": m.type, "help": m.help, "labels": [l.name for l in m.labels]}
                    for m in spec.metrics],
        "can_run": ok, "why_not": why,
        "enabled": bool(configured and configured.enabled), "listen": configured.listen if configured else None,
    }


def config() -> configs.Config:
    return configs.load(Path(current_app.config.get("LMP_CONFIG") or configs.path_from_env()))


@blp.route("")
class Components(MethodView):
    @role_required("viewer")
    @blp.response(200, schemas.Component(many=True))
    def get(self) -> list[dict]:
        cfg = config()
        return [describe(catalog.load(name), cfg) for name in catalog.names()]


@blp.route("/<string:name>")
class Component(MethodView):
    @role_required("viewer")
    @blp.response(200, schemas.Component)
    def get(self, name: str) -> dict:
        try:
            spec = catalog.load(name)
        except KeyError:
            abort(404, message=f"no component named {name!r}")
        return describe(spec, config())
