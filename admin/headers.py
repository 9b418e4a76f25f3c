"""Security headers on every response: a strict Content-Security-Policy (the service's own scripts, styles
and images only, no inline script, no framing by anyone), nosniff and a same-origin Referrer-Policy.

A view that needs another policy sets its own header, which is kept: the scenario page, whose report
frame (srcdoc, so it inherits this page's policy) runs the report's one inline script, allowed by its
hash, and nothing else; a scenario artifact, served as the file it is.

Why not flask-talisman: its policy is per app or per plain view function (not per MethodView, as the API
and artifacts are), it redirects to HTTPS by default, and what is needed here is four headers."""
from __future__ import annotations

import base64
import hashlib
import re
from functools import cache

from flask import Flask, Response

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",  # swagger-ui's and uPlot's icons are data: URLs in their CSS
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def policy(**changes: str) -> str:
    """The policy, with directives changed (names with '_' for '-')."""
    merged = {**POLICY, **{k.replace("_", "-"): v for k, v in changes.items()}}
    return "; ".join(f"{name} {value}" for name, value in merged.items())


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@cache
def report_policy() -> str:
    """The scenario page's policy: the report's inline script and style allowed by hash. The report sets
    style attributes from its script (flame-graph boxes), which style-src-attr allows; they run no code."""
    from scenario.report import page
    html = page("", {})  # the template with its script and style inlined, as every report has them
    # The report's own template (scenario/report/report.html): its code is the one <script> without
    # attributes (the data is a <script type="application/json">, which never runs), its style the <style>.
    scripts = [_sha256(s) for s in re.findall(r"<script>(.*?)</script>", html, re.S)]
    styles = [_sha256(s) for s in re.findall(r"<style>(.*?)</style>", html, re.S)]
    return policy(script_src=" ".join(["'self'", *scripts]), style_src_elem=" ".join(["'self'", *styles]),
                  style_src_attr="'unsafe-inline'")


def secure(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", policy())
    headers.setdefault("X-Frame-Options", "DENY")  # frame-ancestors' predecessor, for older browsers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    return response


def install(app: Flask) -> None:
    app.after_request(secure)
