"""A function component's rules: read them (viewer), replace them (admin). One resource per component,
/api/v1/components/<name>/rules, described in the OpenAPI document by the JSON schema in the component's
own spec, so the API, the config file and the component check rules against the same schema.

A PUT is checked the way the component will check it (schema, CIDRs, and that every interface and cgroup
named exists on this host) and refused with a 422 naming the problem; nothing is written then, and the
rules in force stay. Accepted rules go into the config file, which the running component watches: it
applies them within a second, without reloading its programs."""
from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from exporters._lib import catalog, rules as ruleset
from exporters._lib.links import TargetError
from exporters._lib.spec import Spec

from ..auth import current_user, role_required
from ..models import audit, db
from .components import config
from .config import REFUSED, edit

PREFIX = "/components"
blp = Blueprint("rules", __name__, description="Function components' rules (read: viewer; replace: admin).")
NOT_FOUND = {"description": "The component has no entry in the config.", **REFUSED}


def current(name: str) -> dict[str, Any]:
    configured = config().collectors.get(name)
    if configured is None:
        abort(404, message=f"{name} has no entry in the config; add one with its listen address first")
    return configured.rules


def replace(spec: Spec) -> dict[str, Any]:
    rules = request.get_json(silent=True)
    if not isinstance(rules, dict):
        abort(422, message="the body must be a JSON object: the component's rules")
    try:
        ruleset.check(spec, ruleset.parse(spec, rules))
    except ruleset.RuleError as err:
        abort(422, message=f"rules refused, the rules in force stay: {err}",
              errors={"location": list(err.location), "reason": err.reason})
    except TargetError as err:
        abort(422, message=f"rules refused, the rules in force stay: {err}", errors={"reason": str(err)})
    edit(spec.name, lambda entry: entry.__setitem__("rules", rules))
    audit(current_user().name, "set rules", spec.name)
    db.session.commit()
    return current(spec.name)


def resource(spec: Spec) -> None:
    """Register /components/<name>/rules for one function component, documented with its rules' schema."""
    body = {"content": {"application/json": {"schema": spec.rules}}}

    class Rules(MethodView):
        @role_required("viewer")
        @blp.doc(summary=f"{spec.name}'s rules, as the config has them",
                 responses={"200": {"description": "The rules.", **body}, "404": NOT_FOUND})
        def get(self) -> dict[str, Any]:
            return current(spec.name)

        @role_required("admin")
        @blp.doc(summary=f"Replace {spec.name}'s rules; the running component applies them within a second",
                 requestBody={"required": True, "description": "The new rules, whole.", **body},
                 responses={"200": {"description": "Saved; the rules as the config now has them.", **body},
                            "404": NOT_FOUND,
                            "422": {"description": "Refused, with the reason; nothing was saved.", **REFUSED}})
        def put(self) -> dict[str, Any]:
            return replace(spec)

    Rules.__name__ = f"{spec.name.capitalize()}Rules"  # flask-smorest names the endpoint after the class
    blp.route(f"/{spec.name}/rules")(Rules)


for _name in catalog.names():
    if (_spec := catalog.load(_name)).kind == "function":
        resource(_spec)
