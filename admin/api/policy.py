"""A function component's policy: read it (viewer), replace it (admin). One resource per component,
/api/v1/components/<name>/policy, described in the OpenAPI document by the JSON schema in the component's
own spec, so the API, the config file and the component check a policy against the same schema.

A PUT is checked the way the component will check it (schema, CIDRs, and that every interface and cgroup
named exists on this host) and refused with a 422 naming the problem; nothing is written then, and the
policy in force stays. An accepted policy goes into the config file, which the running component watches:
it applies the policy within a second, without reloading its programs."""
from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from exporters._lib import catalog
from exporters._lib.function import policy as policies
from exporters._lib.function.links import TargetError
from exporters._lib.spec import Spec

from .. import configfile
from ..auth import current_user, role_required
from ..models import audit, db
from .schemas import REFUSED

PREFIX = "/components"
blp = Blueprint("policy", __name__, description="Function components' policy (read: viewer; replace: admin).")


def current(name: str) -> dict[str, Any]:
    return configfile.current().collectors[name].policy


def replace(spec: Spec) -> dict[str, Any]:
    policy = request.get_json(silent=True)
    if not isinstance(policy, dict):
        abort(422, message="the body must be a JSON object: the component's policy")
    try:
        policies.check(spec, policies.parse(spec, policy))
    except policies.PolicyError as err:
        abort(422, message=f"policy refused, the policy in force stays: {err}",
              errors={"location": list(err.location), "reason": err.reason})
    except TargetError as err:
        abort(422, message=f"policy refused, the policy in force stays: {err}", errors={"reason": str(err)})
    configfile.edit_entry(spec.name, lambda entry: entry.__setitem__("policy", policy))
    audit(current_user().name, "set policy", spec.name)
    db.session.commit()
    return current(spec.name)


def resource(spec: Spec) -> None:
    """Register /components/<name>/policy for one function component, documented with its policy's schema."""
    body = {"content": {"application/json": {"schema": spec.policy}}}

    class Policy(MethodView):
        @role_required("viewer")
        @blp.doc(summary=f"{spec.name}'s policy, as the config has it",
                 responses={"200": {"description": "The policy.", **body}})
        def get(self) -> dict[str, Any]:
            return current(spec.name)

        @role_required("admin")
        @blp.doc(summary=f"Replace {spec.name}'s policy; the running component applies it within a second",
                 requestBody={"required": True, "description": "The new policy, whole.", **body},
                 responses={"200": {"description": "Saved; the policy as the config now has it.", **body},
                            "422": {"description": "Refused, with the reason; nothing was saved.", **REFUSED}})
        def put(self) -> dict[str, Any]:
            return replace(spec)

    Policy.__name__ = f"{spec.name.capitalize()}Policy"  # flask-smorest names the endpoint after the class
    blp.route(f"/{spec.name}/policy")(Policy)


for _name in catalog.names():
    if (_spec := catalog.load(_name)).kind == "function":
        resource(_spec)
