"""Pages for people, beside the JSON API: the interactive API reference at /api/docs, and the front-end
libraries it uses. Those are installed by npm from admin/package.json (pinned) and served by this service,
never from a CDN: a host may have no internet."""
from __future__ import annotations

import re
from pathlib import Path

import markdown
import nh3
from flask import Blueprint, abort, render_template, send_from_directory
from markupsafe import Markup

NODE_MODULES = Path(__file__).with_name("node_modules")
LINKS = [  # links between the repository's Markdown files, to the pages that show them here
    (r'href="(?:\.\./)*docs/([a-z0-9_-]+)\.md(#[^"]*)?"', r'href="/docs/\1\2"'),
    (r'href="(?:\.\./)*(?:exporters/)?([a-z0-9]+)/README\.md(#[^"]*)?"', r'href="/components/\1\2"'),
    (r'href="([a-z0-9_-]+)\.md(#[^"]*)?"', r'href="/docs/\1\2"'),
]
VENDOR = ("swagger-ui-dist", "uplot", "codemirror")  # the packages served under /vendor/

blp = Blueprint("pages", __name__)


def missing_assets() -> list[str]:
    return [p for p in VENDOR if not (NODE_MODULES / p / "package.json").is_file()]


@blp.get("/api/docs")
def api_docs() -> str:
    return render_template("api_docs.html", missing=missing_assets())


@blp.get("/vendor/<package>/<path:name>")
def vendor(package: str, name: str):  # type: ignore[no-untyped-def]
    if package not in VENDOR:
        abort(404)
    return send_from_directory(NODE_MODULES / package, name, max_age=3600)


# What rendered Markdown may keep: nh3's (ammonia's) safe defaults, plus the ids of headings (the runbook's
# #anchors) and the language class of code blocks. No script, no event handler, no style, no javascript: URL.
ATTRIBUTES = {**nh3.ALLOWED_ATTRIBUTES, **{f"h{n}": {"id"} for n in range(1, 7)}, "code": {"class"}}


def render_markdown(text: str) -> Markup:
    """Markdown as HTML, headings with ids (the runbook's #anchors), links between docs/ pages kept working.
    Markdown passes raw HTML through, so the result goes through a sanitizer (nh3, the binding of Rust's
    ammonia) before it is marked safe: today only the repository's files come here, but whatever HTML they
    carry must never run in an admin's browser."""
    html = markdown.markdown(text, extensions=["tables", "fenced_code", "toc"])
    for pattern, page in LINKS:
        html = re.sub(pattern, page, html)
    return Markup(nh3.clean(html, attributes=ATTRIBUTES))
