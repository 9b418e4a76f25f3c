"""Containers and services by what the collectors see (lmp top, for the web page): each enabled exporter's
/metrics read by the admin, rates between this request's read and the one before it."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from exporters._lib.serving import Reach
from lmp import top

from .. import configfile
from ..auth import role_required

PREFIX = "/top"
blp = Blueprint("top", __name__, description="Containers and services, named, by what the collectors see.")
_last: top.Sample | None = None
_lock = threading.Lock()  # one read at a time: each request's rates are against the read before it


class Row(Schema):
    cgroup = fields.String()
    name = fields.String()
    kind = fields.String()
    rates = fields.Dict(keys=fields.String(), values=fields.Float(), metadata={"description": "per second"})
    collector = fields.String(metadata={"description": "the collector of its busiest column: its page and charts"})
    pid = fields.Integer(allow_none=True, metadata={"description": "a process of it, to record a scenario of"})


class Table(Schema):
    columns = fields.List(fields.String())
    rows = fields.List(fields.Nested(Row))


def sample_pair() -> tuple[top.Sample, top.Sample]:
    global _last
    reach = Reach.of_run_dir(Path(current_app.config.get("RUN_DIR", "/run/lmp")))
    urls = top.urls_from_config_object(configfile.current(), reach)
    with _lock:
        before = _last
        if before is None or time.monotonic() - before.at > 60:  # nothing recent to compare with
            before = top.scrape(urls, timeout=2, reach=reach)
            time.sleep(1)
        _last = top.scrape(urls, timeout=2, reach=reach)
        return before, _last


@blp.route("")
class Top(MethodView):
    @role_required("viewer")
    @blp.response(200, Table)
    def get(self) -> dict:
        """Every cgroup the collectors show, named, busiest first, with its rates since the last read."""
        before, after = sample_pair()
        columns, found = top.rows(before, after)
        rows = []
        for row in found[:100]:
            rows.append({"cgroup": row.cgroup, "name": row.name, "kind": row.kind, "rates": row.rates,
                         "collector": top.collector_of(row, after.collector), "pid": top.first_pid(row.cgroup)})
        return {"columns": columns, "rows": rows}
