"""The component catalog: every collector as its own spec describes it, and whether it runs here."""
from pathlib import Path

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from prometheus_client.parser import text_string_to_metric_families

from exporters._lib import catalog, results
from exporters._lib.bpf import can_run
from exporters._lib.serving import Reach
from exporters._lib.spec import Spec
from lmp import config as configs
from lmp import supervisor, top

from .. import configfile
from ..auth import current_user, role_required
from ..models import audit, db
from . import schemas

PREFIX = "/components"
blp = Blueprint("components", __name__, description="The collectors: what each measures, and its state.")


def describe(spec: Spec, cfg: configs.Config) -> dict:
    ok, why = can_run(spec)
    configured = cfg.collectors[spec.name]
    state = supervisor.child_state(Path(current_app.config.get("RUN_DIR", "/run/lmp")), spec.name)
    return {**state,
        "name": spec.name, "kind": spec.kind, "description": spec.summary, "overhead": results.overhead(spec.name),
        "hooks": spec.hooks,
        "metrics": [{"name": m.name, "type": m.type, "help": m.help, "labels": [l.name for l in m.labels]}
                    for m in spec.metrics],
        "can_run": ok, "why_not": why,
        "enabled": configured.enabled, "listen": configured.listen,
    }


def exported(listen: str | None, reach: Reach = Reach()) -> dict:
    """What the running exporter says about its series and its cgroups, named (lmp_cgroup_info), from its
    /metrics; nothing when it does not answer."""
    found: dict = {"series": None, "series_budget": None, "cgroups": []}
    if not listen:
        return found
    try:
        with reach.open(reach.url(listen), 2) as response:
            text = response.read().decode()
    except (OSError, ValueError):
        return found
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in ("lmp_exporter_series", "lmp_exporter_series_budget"):
                found[s.name.removeprefix("lmp_exporter_")] = int(s.value)
            elif s.name == "lmp_cgroup_info":
                name, kind = top.display(s.labels["cgroup"], s.labels)
                found["cgroups"].append({"cgroup": s.labels["cgroup"], "name": name, "kind": kind})
    found["cgroups"].sort(key=lambda c: (c["kind"], c["name"]))
    return found


@blp.route("")
class Components(MethodView):
    @role_required("viewer")
    @blp.response(200, schemas.Component(many=True))
    def get(self) -> list[dict]:
        cfg = configfile.current()
        return [describe(catalog.load(name), cfg) for name in catalog.names()]


def switch(name: str, enabled: bool) -> dict:
    try:
        spec = catalog.load(name)
    except KeyError:
        abort(404, message=f"no component named {name!r}")
    configfile.set_enabled(name, enabled)
    audit(current_user().name, "enable" if enabled else "disable", name)
    db.session.commit()
    supervisor.reconcile_now(Path(current_app.config.get("RUN_DIR", "/run/lmp")), name, enabled)
    return describe(spec, configfile.current())


@blp.route("/<string:name>/enable")
class Enable(MethodView):
    @role_required("operator")
    @blp.response(200, schemas.Component)
    def post(self, name: str) -> dict:
        return switch(name, True)


@blp.route("/<string:name>/disable")
class Disable(MethodView):
    @role_required("operator")
    @blp.response(200, schemas.Component)
    def post(self, name: str) -> dict:
        return switch(name, False)


@blp.route("/<string:name>")
class Component(MethodView):
    @role_required("viewer")
    @blp.response(200, schemas.Component)
    def get(self, name: str) -> dict:
        try:
            spec = catalog.load(name)
        except KeyError:
            abort(404, message=f"no component named {name!r}")
        described = describe(spec, configfile.current())
        reach = Reach.of_run_dir(Path(current_app.config.get("RUN_DIR", "/run/lmp")))  # as lmp run set it up
        return {**described, **exported(described["listen"] if described.get("running") else None, reach)}
