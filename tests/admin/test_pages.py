"""The interactive API reference at /api/docs: served with its assets from this host, none from elsewhere."""
from __future__ import annotations

import re

from exporters._lib import paths


def test_api_docs_page_loads_its_assets_from_this_host(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {"/vendor/swagger-ui-dist/swagger-ui.css", "/vendor/swagger-ui-dist/swagger-ui-bundle.js"} <= set(assets)
    assert not [a for a in assets if "//" in a], "an asset from another host"
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200 and len(response.data) > 300, asset
    assert "<script>" not in html  # no inline script: the pages' policy would refuse it
    script = client.get("/static/js/api_docs.js").get_data(as_text=True)
    assert "validatorUrl: null" in script  # swagger-ui would otherwise call validator.swagger.io


def test_the_document_it_shows_names_the_bearer_scheme(client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert doc["security"] == [{"bearer": []}]
    assert doc["paths"]["/api/v1/auth/login"]["post"]["security"] == []  # no token to get a token
    assert "application/yaml" in doc["paths"]["/api/v1/config"]["put"]["requestBody"]["content"]


def test_vendor_serves_only_the_listed_packages(client):
    assert client.get("/vendor/swagger-ui-dist/package.json").status_code == 200
    for path in ("/vendor/.bin/x", "/vendor/swagger-ui-dist/../../__init__.py", "/vendor/@scarf/scarf/report.js"):
        response = client.get(path)
        assert response.status_code == 404 and response.is_json, path


def test_every_alerts_runbook_url_opens_its_section(client):
    """The generated rules link each alert to /docs/runbook#<alert>: the admin serves that page, with that
    heading id."""
    from urllib.parse import urlsplit

    urls = re.findall(r"runbook_url: (\S+)", paths.ALERT_RULES.read_text())
    assert urls
    for url in urls:
        parts = urlsplit(url)
        page = client.get(parts.path)
        assert page.status_code == 200, url
        assert f'id="{parts.fragment}"' in page.get_data(as_text=True), url


def test_docs_are_only_the_docs_folder(client):
    assert client.get("/docs/metrics").status_code == 200
    for path in ("/docs/nosuch", "/docs/..%2FREADME", "/docs/Runbook"):
        assert client.get(path).status_code == 404, path


def test_markdown_goes_through_a_sanitizer():
    """Markdown passes raw HTML through; what reaches a page never runs script, whatever the file holds."""
    from admin.pages import render_markdown
    html = str(render_markdown("# Title\n\n<script>alert(1)</script><img src=x onerror=alert(2)>"
                               "<iframe src=//x></iframe> [a](javascript:alert(3)) [runbook](docs/runbook.md#x)\n"))
    for bad in ("<script", "alert(1)", "onerror", "<iframe", "javascript:"):
        assert bad not in html, bad
    assert '<h1 id="title">Title</h1>' in html and 'href="/docs/runbook#x"' in html  # anchors and links kept
