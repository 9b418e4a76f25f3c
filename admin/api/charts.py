"""Charts for the web page, read from the local Prometheus through the admin, so that the browser needs no
access to Prometheus. A board's charts are the time-series panels of its generated Grafana dashboard
(`overview`, or a collector's), with their PromQL: the page and Grafana show the same queries."""
from __future__ import annotations

import json
import math
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from functools import lru_cache

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from exporters._lib import paths
from exporters._lib.serving import scrape_url
from lmp import config as configs

from .. import configfile
from ..auth import role_required
from . import schemas

PREFIX = "/charts"
blp = Blueprint("charts", __name__, description="The web page's charts: panels of the generated dashboards, "
                                                 "their data from the local Prometheus.")
POINTS = 240  # per series: enough for a smooth line, little to send


def promql_regex(text: str) -> str:
    """`text` matched exactly by a PromQL =~ (RE2, anchored), inside a double-quoted PromQL string."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text).replace("\\", "\\\\").replace('"', '\\"')


@lru_cache(maxsize=32)
def board(name: str, cgroup: str | None = None) -> tuple[dict, ...]:
    """The time-series panels of dashboards/grafana/lmp-<name>.json, the template variables filled in for
    this host (every LMP series of this host has instance=<host name>) and for one cgroup, or all of them."""
    path = paths.GRAFANA_DIR / f"lmp-{name}.json"
    if not re.fullmatch(r"[a-z0-9]+", name) or not path.is_file():
        return ()
    variables = {"$job": "lmp", "$instance": promql_regex(socket.gethostname()),
                 "$cgroup": ".*" if cgroup is None else promql_regex(cgroup), "$container": ".*", "$pod": ".*",
                 "$__rate_interval": "1m"}
    charts = []
    for panel in json.loads(path.read_text())["panels"]:
        if panel["type"] != "timeseries":
            continue
        queries = []
        for target in panel["targets"]:
            # One pass: a value filled in (a cgroup's path) is never read again for variables.
            expr = re.sub(r"\$\w+", lambda m: variables.get(m.group(0), m.group(0)), target["expr"])
            queries.append({"expr": expr, "legend": target["legendFormat"]})
        charts.append({"id": panel["id"], "title": panel["title"], "description": panel.get("description") or "",
                       "unit": panel["fieldConfig"]["defaults"].get("unit", ""), "queries": queries})
    return tuple(charts)


def find(name: str, cgroup: str | None = None) -> tuple[dict, ...]:
    charts = board(name, cgroup)
    if not charts:
        abort(404, message=f"no dashboard named {name!r} (overview, or a collector's name)")
    return charts


def legend(template: str, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip()
    return text or ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or "value"


def query_range(cfg: configs.Config, expr: str, start: float, end: float, step: float) -> list[dict]:
    """The query's series. Whatever answers at prometheus.listen (an admin sets it) never has its body
    shown to the caller: a viewer must not read another server's pages through this one. What it said
    goes to this service's log."""
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    url = scrape_url(cfg.prometheus.listen, f"/api/v1/query_range?{params}")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            result = json.load(response)["data"]["result"]
        if not all(isinstance(r, dict) and isinstance(r.get("metric"), dict) and isinstance(r.get("values"), list)
                   for r in result):
            raise ValueError("not a range query's series")
        return result
    except urllib.error.HTTPError as err:
        current_app.logger.warning("Prometheus at %s refused %r: HTTP %s %.300r", cfg.prometheus.listen, expr,
                                   err.code, err.read())
        abort(502, message=f"Prometheus at {cfg.prometheus.listen} refused the query {expr!r} (HTTP {err.code}); "
                           f"what it said is in the admin service's log")
    except OSError as err:
        abort(503, message=f"the local Prometheus at {cfg.prometheus.listen} does not answer ({err}); "
                           f"is LMP running with its Prometheus (lmp run)?")
    except (ValueError, KeyError, TypeError):
        abort(502, message=f"what answers at {cfg.prometheus.listen} is not Prometheus (not a query's result)")
    return []  # not reached: abort raises


@blp.route("/<string:name>")
class Board(MethodView):
    @role_required("viewer")
    @blp.arguments(schemas.BoardQuery, location="query")
    @blp.response(200, schemas.Chart(many=True))
    def get(self, query: dict, name: str) -> list[dict]:
        """The charts of a board, with their PromQL (for one cgroup, or all of them)."""
        return list(find(name, query.get("cgroup")))  # a list: flask-smorest reads a tuple as (body, status, headers)


@blp.route("/<string:name>/<int:chart>")
class ChartData(MethodView):
    @role_required("viewer")
    @blp.arguments(schemas.ChartQuery, location="query")
    @blp.response(200, schemas.ChartData)
    @blp.alt_response(502, description="Prometheus refused the query.")
    @blp.alt_response(503, description="The local Prometheus is off or does not answer.")
    def get(self, query: dict, name: str, chart: int) -> dict:
        """One chart's series over the last `minutes`, from the local Prometheus."""
        found = next((c for c in find(name, query.get("cgroup")) if c["id"] == chart), None)
        if found is None:
            abort(404, message=f"dashboard {name} has no chart {chart}")
        cfg = configfile.current()
        if not cfg.prometheus.enabled:
            abort(503, message="LMP's own Prometheus is off in the config (prometheus.enabled): no chart data")
        end = time.time()
        start = end - query["minutes"] * 60
        step = max(1.0, math.ceil((end - start) / POINTS))
        series = []
        for q in found["queries"]:
            for result in query_range(cfg, q["expr"], start, end, step):
                values = [[float(t), float(v)] for t, v in result["values"] if math.isfinite(float(v))]
                series.append({"name": legend(q["legend"], result["metric"]), "values": values})
        return {"title": found["title"], "unit": found["unit"], "step": step, "series": series}
