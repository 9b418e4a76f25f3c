"""Prometheus HTTP service discovery (http_sd_configs): one target group per exporter the admin runs, so
that enabling a collector adds its target, and disabling it removes it, with no Prometheus restart.

An enabled exporter stays listed while it is down (crashed, restarting, or unable to run here): Prometheus
then records `up == 0` for it, which is what alerts on a dead exporter watch."""
import socket
from urllib.parse import urlsplit

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from exporters._lib.serving import parse_listen

from .. import configfile
from ..auth import role_required
from . import schemas

PREFIX = "/sd"
blp = Blueprint("sd", __name__, description="Prometheus HTTP service discovery of the exporters the admin runs.")


def target(listen: str) -> str:
    """Where Prometheus reaches an exporter: its own address, or for a wildcard listen, the host name
    Prometheus used to reach this admin (it is on the same host)."""
    host, port = parse_listen(listen)
    if host in ("0.0.0.0", "::", ""):
        host = urlsplit(f"//{request.host}").hostname or "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@blp.route("")
class ServiceDiscovery(MethodView):
    @role_required("viewer")
    @blp.response(200, schemas.TargetGroup(many=True))
    def get(self) -> list[dict]:
        hostname = socket.gethostname()
        # `instance` is the host, the same for every collector on it, so that a dashboard picks a host;
        # `collector` tells a host's exporters apart.
        return [{"targets": [target(c.listen)], "labels": {"collector": c.name, "instance": hostname}}
                for c in configfile.current().collectors.values() if c.enabled]
