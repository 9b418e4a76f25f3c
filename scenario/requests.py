"""Request spans (scenario/bpf/requests.bpf.c) in words: the protocol, role, method or command and status
of each, named as the l7 collector's spec names them (exporters/l7/l7.yaml), so that a span and a metric
say the same thing the same way."""
from __future__ import annotations

from functools import cache
from typing import Any

from exporters._lib import catalog

PROTOCOLS = ("none", "http", "dns", "redis", "postgres")  # l7's P_NONE ... P_POSTGRES
ROLES = ("client", "server")


@cache
def _values(metric: str, label: str) -> tuple[str, ...]:
    spec = catalog.load("l7", check=False)
    found = next(m for m in spec.metrics if m.name == metric)
    return next(lb for lb in found.labels if lb.name == label).values


def _name(values: tuple[str, ...], i: int) -> str:
    return values[i] if 0 <= i < len(values) else str(i)


def describe(protocol: int, what: int, status: int, command: bytes, sqlstate: bytes) -> dict[str, Any]:
    """The fields of one span: protocol, and per protocol its method (HTTP), query type and rcode (DNS),
    command (Redis), query protocol and SQLSTATE class (PostgreSQL), and status; `error` when it failed."""
    proto = _name(PROTOCOLS, protocol)
    if proto == "http":
        return {"protocol": proto, "method": _name(_values("lmp_http_requests_total", "method"), what),
                "status": status, "error": status >= 500}
    if proto == "dns":
        return {"protocol": proto, "qtype": _name(_values("lmp_dns_requests_total", "qtype"), what),
                "status": _name(_values("lmp_dns_requests_total", "rcode"), status), "error": status != 0}
    if proto == "redis":
        return {"protocol": proto, "command": command.decode(errors="replace"), "status": ("ok", "error")[status & 1],
                "error": bool(status)}
    if proto == "postgres":
        return {"protocol": proto, "query": _name(_values("lmp_postgres_requests_total", "protocol"), what),
                "status": ("ok", "error")[status & 1], "sqlstate_class": sqlstate.decode(errors="replace"),
                "error": bool(status)}
    return {"protocol": proto, "status": status, "error": False}


def title(e: dict[str, Any]) -> str:
    """A span's name on a timeline: "HTTP GET 200 (server)", "redis LPUSH error (client)"."""
    what = e.get("method") or e.get("qtype") or e.get("command") or e.get("query") or ""
    proto = "HTTP" if e["protocol"] == "http" else "DNS" if e["protocol"] == "dns" else e["protocol"]
    return " ".join(str(p) for p in (proto, what, e["status"]) if p != "") + f" ({e['role']})"
