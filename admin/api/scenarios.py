"""Scenario analysis through the API: start an `lmp scenario` run, list runs, poll one, stop it, fetch its
results, delete it.

Who may do what: a scenario of a command runs that command as root on this host, so only an admin may
start one; attaching to a process that is already running only observes it (its syscalls, the paths
it opens, its stacks), which an operator may do, as an operator may turn collectors on. Viewers see the
runs and their results. Stopping is an operator's (it ends the recording, not the host's work: an
attached process keeps running; a command started by `run` is stopped with its recording)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from flask import send_file
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from scenario.loader import FAMILIES, MAX_UPROBES

from .. import scenario_runs as runs
from ..auth import current_user, role_required
from ..models import ROLES, ScenarioRun, audit, db
from .schemas import UTC_TIME, UtcDateTime

PREFIX = "/scenarios"
blp = Blueprint("scenarios", __name__, description="Scenario analysis of one process: start, poll, fetch results.")
MEDIA = {".json": "application/json", ".folded": "text/plain", ".html": "text/html", ".log": "text/plain"}
ARG = fields.String(validate=[validate.Length(min=1, max=4096), validate.Regexp(r"^[^\x00]+$")])


class NewScenario(Schema):
    command = fields.List(ARG, validate=validate.Length(min=1, max=64),
                          metadata={"description": "argv of a command to start and follow (admin only)"})
    pid = fields.Integer(validate=validate.Range(min=1, max=1 << 22),
                         metadata={"description": "a running process to follow (operator)"})
    duration = fields.Float(validate=validate.Range(min=0.5), metadata={
        "description": "seconds to follow (run: a cap; default the service's maximum, attach: default 10)"})
    events = fields.List(fields.String(validate=validate.OneOf(FAMILIES)), validate=validate.Length(min=1))
    children = fields.Boolean(load_default=False)
    uprobes = fields.List(fields.String(validate=validate.Regexp(r"^[\w./+-]+:[\w.$@]+$")),
                          validate=validate.Length(max=MAX_UPROBES), load_default=list)

    @validates_schema
    def one_target(self, data: dict, **_: object) -> None:
        if ("command" in data) == ("pid" in data):
            raise ValidationError("give either a command or a pid")


class Summary(Schema):
    wall_seconds = fields.Float()
    threads = fields.Integer()
    parts = fields.Dict(keys=fields.String(), values=fields.Float())
    top_syscalls = fields.List(fields.Dict())
    events_lost = fields.Integer()


class Scenario(Schema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": "run (a command) or attach (a pid)"})
    command = fields.List(fields.String(), allow_none=True)
    pid = fields.Integer(allow_none=True, metadata={"description": "the process followed (attach)"})
    options = fields.Dict()
    owner = fields.String()
    status = fields.String(metadata={"description": "running, complete or failed"})
    message = fields.String(metadata={"description": "how it ended, or why it failed"})
    created_at = UTC_TIME
    finished_at = UtcDateTime(dump_only=True, allow_none=True)
    artifacts = fields.List(fields.String())
    summary = fields.Nested(Summary, allow_none=True)


def describe(run: ScenarioRun) -> dict:
    runs.refresh(run)
    target = json.loads(run.target)
    return {"id": run.id, "kind": run.kind, "command": target if run.kind == "run" else None,
            "pid": target if run.kind == "attach" else None, "options": json.loads(run.options),
            "owner": run.owner, "status": run.status, "message": run.message, "created_at": run.created_at,
            "finished_at": run.finished_at, "artifacts": runs.artifacts(run), "summary": runs.summary(run)}


def find(run_id: int) -> ScenarioRun:
    run = db.session.get(ScenarioRun, run_id) if run_id < 1 << 62 else None  # SQLite integers have 64 bits
    if run is None:
        abort(404, message=f"no scenario {run_id}")
    return run


def check(body: dict) -> tuple[str, object, float]:
    """The run's kind, target and duration, or a 403/409/422 saying what is wrong."""
    user = current_user()
    longest = float(runs.setting("SCENARIO_MAX_SECONDS"))
    if "command" in body:
        if ROLES.index(user.role) < ROLES.index("admin"):
            abort(403, message="starting a command runs it as root: this needs the admin role")
        if not runs.commands_allowed():
            abort(403, message="running commands is off on this host (admin.scenario_commands in the config; "
                               "only root on the host can turn it on); attaching to a pid works")
        try:
            "".join(body["command"]).encode()
        except UnicodeEncodeError:
            abort(422, message="the command is not valid text")
        if shutil.which(body["command"][0]) is None:
            abort(422, message=f"command not found: {body['command'][0]}")
        kind, target, duration = "run", body["command"], body.get("duration", longest)
    else:
        if not Path(f"/proc/{body['pid']}").is_dir():
            abort(422, message=f"no process with pid {body['pid']}")
        kind, target, duration = "attach", body["pid"], body.get("duration", min(10.0, longest))
    if duration > longest:
        abort(422, message=f"duration {duration} s is over this service's limit of {longest:g} s")
    if runs.running() >= int(runs.setting("SCENARIO_MAX_RUNNING")):
        abort(409, message=f"{runs.setting('SCENARIO_MAX_RUNNING')} scenarios are running already; wait or stop one")
    return kind, target, duration


@blp.route("")
class Scenarios(MethodView):
    @role_required("viewer")
    @blp.response(200, Scenario(many=True))
    def get(self) -> list[dict]:
        return [describe(r) for r in db.session.scalars(db.select(ScenarioRun).order_by(ScenarioRun.id.desc()))]

    @role_required("operator")
    @blp.arguments(NewScenario)
    @blp.response(202, Scenario)
    def post(self, body: dict) -> dict:
        with runs.starting:  # the count of running runs holds until this one is counted too
            kind, target, duration = check(body)
            options = {"duration": duration, "events": body.get("events"), "children": body["children"],
                       "uprobes": body["uprobes"]}
            run = ScenarioRun(kind=kind, target=json.dumps(target), options=json.dumps(options),
                              owner=current_user().name)
            db.session.add(run)
            db.session.flush()  # gives it its id, which names its folder
            try:
                runs.start(run)
            except OSError as err:
                db.session.rollback()
                abort(409, message=f"this host cannot give the run a cgroup of its own ({err}); nothing was started")
            # The whole argv goes to the audit log, which outlives the run (deleting a run keeps it).
            audit(run.owner, f"scenario {kind}", f"{run.id}: {json.dumps(target)}", detail=json.dumps(target))
            db.session.commit()
        return describe(run)


@blp.route("/<int:run_id>")
class ScenarioResource(MethodView):
    @role_required("viewer")
    @blp.response(200, Scenario)
    def get(self, run_id: int) -> dict:
        return describe(find(run_id))

    @role_required("admin")
    @blp.response(204)
    def delete(self, run_id: int) -> None:
        run = runs.refresh(find(run_id))
        if run.status == "running":
            abort(409, message="the scenario is running: stop it first")
        audit(current_user().name, "scenario delete", str(run_id))
        runs.remove(run)


@blp.route("/<int:run_id>/stop")
class Stop(MethodView):
    @role_required("operator")
    @blp.response(202, Scenario)
    def post(self, run_id: int) -> dict:
        run = find(run_id)
        runs.stop(run)
        audit(current_user().name, "scenario stop", str(run_id))
        db.session.commit()
        return describe(run)


@blp.route("/<int:run_id>/artifacts/<string:name>")
class Artifact(MethodView):
    @role_required("viewer")
    @blp.doc(responses={"200": {"description": "the file, as `lmp scenario` wrote it",
                                "content": {m: {} for m in sorted(set(MEDIA.values()))}}})
    def get(self, run_id: int, name: str):  # type: ignore[no-untyped-def]
        run = find(run_id)
        if name not in runs.artifacts(run):
            abort(404, message=f"scenario {run_id} has no {name!r} (yet); it has {', '.join(runs.artifacts(run))}")
        response = send_file(runs.folder(run_id) / name, mimetype=MEDIA[Path(name).suffix], max_age=0)
        response.headers["X-Content-Type-Options"] = "nosniff"
        # The report is self-contained: it may run its own inline script and nothing else, fetch nothing.
        response.headers["Content-Security-Policy"] = ("default-src 'none'; script-src 'unsafe-inline'; "
                                                       "style-src 'unsafe-inline'; img-src data:")
        return response
