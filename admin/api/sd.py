"""Prometheus HTTP service discovery (http_sd_configs): the exporters that are running, one target group
each, so that enabling a collector adds its target with no Prometheus restart."""
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from exporters._lib.exporter import scrape_url

from ..auth import role_required
from . import schemas
from .components import config

PREFIX = "/sd"
blp = Blueprint("sd", __name__, description="Prometheus HTTP service discovery of the running exporters.")


@blp.route("")
class ServiceDiscovery(MethodView):
    @role_required("viewer")
    @blp.response(200, schemas.TargetGroup(many=True))
    def get(self) -> list[dict]:
        supervisor = current_app.extensions.get("lmp_supervisor")
        groups = []
        for c in config().collectors.values():
            running = supervisor.state(c.name)["running"] if supervisor else c.enabled
            if c.enabled and running:
                target = scrape_url(c.listen, "").removeprefix("http://")
                groups.append({"targets": [target], "labels": {"collector": c.name}})
        return groups
