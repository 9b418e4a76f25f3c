"""Input that used to give 500s or be mishandled: JSON nested thousands deep, a chunked body over the limit,
a 405 without Allow, a Prometheus address that echoed another server's answer to viewers."""
from __future__ import annotations

import http.client
import http.server
import json
import threading

import pytest

from .served import Service, service  # noqa: F401 - service: a fixture


def deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize("method, path", [("post", "/api/v1/auth/login"), ("post", "/api/v1/users"),
                                          ("put", "/api/v1/components/connguard/policy"),
                                          ("post", "/api/v1/scenarios")])
@pytest.mark.parametrize("levels", [40, 5000, 100000])
def test_json_nested_deep_is_a_400(client, auth, config_file, method, path, levels):
    before = config_file.read_text()
    response = getattr(client, method)(path, data=deep(levels), content_type="application/json",
                                       headers=auth.headers("root"))
    assert response.status_code == 400 and response.json["code"] == 400, response.json
    assert config_file.read_text() == before


def test_json_a_few_levels_deep_is_still_fine(client, auth, config_file):
    policy = {"cgroups": ["/"], "destinations": [{"cidr": "::1", "ports": [443]}]}
    assert client.put("/api/v1/components/connguard/policy", json=policy, headers=auth.headers("root")).status_code == 200


def test_a_405_says_what_is_allowed(client, auth):
    for path, allowed in (("/api/v1/health", {"GET", "HEAD", "OPTIONS"}),
                          ("/api/v1/users/me/password", {"PUT", "OPTIONS"})):
        response = client.delete(path, headers=auth.headers("root"))
        assert response.status_code == 405 and response.is_json
        assert set(response.headers["Allow"].split(", ")) == allowed


def test_charts_never_echo_what_another_server_says(client, auth, config_file):
    secret = "the-body-of-another-server-a-viewer-must-not-read"

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            status = 500 if "/query_range" in self.path and "fail" in self.server.mode else 200
            body = secret.encode() if status == 500 or self.server.mode == "text" else b'{"data": {"result": 5}}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Other)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config_file.write_text(config_file.read_text().replace("listen: 127.0.0.1:9490", f"listen: 127.0.0.1:{server.server_port}"))
        first = client.get("/api/v1/charts/overview", headers=auth.headers("view")).json[0]["id"]
        for mode in ("fail", "text", "json"):
            server.mode = mode  # type: ignore[attr-defined]
            response = client.get(f"/api/v1/charts/overview/{first}", headers=auth.headers("view"))
            assert response.status_code == 502 and secret not in response.get_data(as_text=True), (mode, response.json)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_chunked_body_over_the_limit_is_413_and_saves_nothing(service):
    token = service.login("root")
    answer = service.call("GET", "/api/v1/config", token)
    text, etag = answer.body, answer.headers["etag"]
    before = service.config.read_text()
    # Valid YAML at any cut: a comment padding it past 1 MiB. Cut at 1 MiB, it would still load.
    padded = text.replace("scrape_interval: 5s", "scrape_interval: 6s") + "#" + "x" * (1 << 20) + "\n"
    for chunked in (True, False):
        conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
        headers = {"Authorization": f"Bearer {token}", "If-Match": etag, "Content-Type": "application/yaml"}
        if chunked:
            conn.request("PUT", "/api/v1/config", body=iter([padded[i:i + 65536].encode()
                                                            for i in range(0, len(padded), 65536)]),
                         headers=headers, encode_chunked=True)
        else:
            conn.request("PUT", "/api/v1/config", body=padded.encode(), headers=headers)
        response = conn.getresponse()
        status, body = response.status, response.read()
        conn.close()
        assert status == 413 and json.loads(body)["code"] == 413, (chunked, status, body)
        assert service.config.read_text() == before
    small = text.replace("scrape_interval: 5s", "scrape_interval: 7s")
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
    conn.request("PUT", "/api/v1/config", body=iter([small.encode()]), encode_chunked=True,
                 headers={"Authorization": f"Bearer {token}", "If-Match": etag, "Content-Type": "application/yaml"})
    assert conn.getresponse().status == 204  # a chunked body under the limit is read whole
    conn.close()
    assert service.config.read_text() == small
