"""Pages for people, beside the JSON API: the interactive API reference at /api/docs, and the front-end
libraries it uses. Those are installed by npm from admin/package.json (pinned) and served by this service,
never from a CDN: a host may have no internet."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, redirect, render_template, send_from_directory, url_for

NODE_MODULES = Path(__file__).with_name("node_modules")
VENDOR = ("swagger-ui-dist",)  # the packages served under /vendor/

blp = Blueprint("pages", __name__)


def missing_assets() -> list[str]:
    return [p for p in VENDOR if not (NODE_MODULES / p / "package.json").is_file()]


@blp.get("/")
def index():  # type: ignore[no-untyped-def]
    return redirect(url_for("pages.api_docs"))


@blp.get("/api/docs")
def api_docs() -> str:
    return render_template("api_docs.html", missing=missing_assets())


@blp.get("/vendor/<package>/<path:name>")
def vendor(package: str, name: str):  # type: ignore[no-untyped-def]
    if package not in VENDOR:
        abort(404)
    return send_from_directory(NODE_MODULES / package, name, max_age=3600)
