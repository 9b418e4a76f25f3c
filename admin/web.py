"""The web page: login, the live overview, the components, each collector's page, the config, users and
audit log. Each page is a template and a small script; the data comes from the JSON API with the token the
login page stored, so the pages themselves hold nothing of the host and need no login to load."""
from __future__ import annotations

import re

from flask import Blueprint, abort, render_template, url_for
from markupsafe import Markup

from exporters._lib import catalog, paths

from .headers import report_policy
from .pages import missing_assets, render_markdown

blp = Blueprint("web", __name__)
PAGES = [("web.overview", "Overview"), ("web.components", "Components"), ("web.containers", "Containers"),
         ("web.scenarios", "Scenarios"),
         ("web.config", "Config"), ("web.users", "Users"), ("web.audit", "Audit log")]  # the navigation, in order
ADMIN_ONLY = {"web.users", "web.audit"}


def page(template: str, title: str, **context: object) -> str:
    return render_template(template, title=title, pages=PAGES, admin_only=ADMIN_ONLY, missing=missing_assets(),
                           **context)


@blp.get("/login")
def login() -> str:
    return page("login.html", "Log in")


@blp.get("/")
def overview() -> str:
    return page("overview.html", "Overview")


@blp.get("/components")
def components() -> str:
    return page("components.html", "Components")


@blp.get("/components/<name>")
def component(name: str) -> str:
    try:
        spec = catalog.load(name)
    except KeyError:
        abort(404)
    readme = render_markdown(spec.readme.read_text()) if spec.readme.is_file() else ""
    return page("component.html", name, spec=spec, readme=readme)


@blp.get("/containers")
def containers() -> str:
    return page("containers.html", "Containers")


@blp.get("/scenarios")
def scenarios() -> str:
    from scenario.loader import FAMILIES
    return page("scenarios.html", "Scenarios", families=FAMILIES)


@blp.get("/scenarios/<int:run_id>")
def scenario_run(run_id: int) -> tuple[str, dict[str, str]]:
    # Its report frame inherits this page's policy: the report's own inline script and style are allowed.
    return page("scenario.html", f"Scenario {run_id}", run_id=run_id), {"Content-Security-Policy": report_policy()}


@blp.get("/config")
def config() -> str:
    return page("config.html", "Config")


@blp.get("/users")
def users() -> str:
    return page("users.html", "Users")


@blp.get("/audit")
def audit() -> str:
    return page("audit.html", "Audit log")


@blp.get("/docs/")
def docs_index() -> str:
    links = "".join(f'<li><a href="{url_for("web.doc", name=p.stem)}">{p.stem}</a></li>'
                    for p in sorted(paths.DOCS_DIR.glob("*.md")))
    return page("docs.html", "LMP documentation", body=Markup(f"<h1>LMP documentation</h1><ul>{links}</ul>"))


@blp.get("/docs/<name>")
def doc(name: str) -> str:
    path = paths.DOCS_DIR / f"{name}.md"
    if not re.fullmatch(r"[a-z0-9_-]+", name) or not path.is_file():
        abort(404)
    return page("docs.html", name, body=render_markdown(path.read_text()))
