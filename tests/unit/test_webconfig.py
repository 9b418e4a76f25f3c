"""The web config file (exporter-toolkit's format): good files load; bad ones are refused with the file,
the line and the reason; basic auth answers as the hashes say."""
from __future__ import annotations

import base64
from pathlib import Path

import bcrypt
import pytest

from exporters._lib import webconfig
from exporters._lib.access import BasicAuth
from exporters._lib.yamlfile import YamlError
from tests.conftest import make_cert

HASH = bcrypt.hashpw(b"right password", bcrypt.gensalt(rounds=4)).decode()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def test_a_good_file_loads_with_paths_beside_it(tmp_path: Path) -> None:
    make_cert(tmp_path)
    web = webconfig.load(write(tmp_path, f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                                         f"  min_version: TLS13\nbasic_auth_users:\n  prometheus: {HASH}\n"))
    assert web.tls is not None and web.tls.cert_file == tmp_path / "server.crt"
    assert web.tls.context().minimum_version.name == "TLSv1_3"
    assert web.users == {"prometheus": HASH}
    assert webconfig.load(write(tmp_path, "")).tls is None  # empty: the toolkit's "no TLS, no auth"


@pytest.mark.parametrize("text, line, reason", [
    ("tls_server_config:\n  cert_file: server.crt\n", 1, "tls_server_config needs key_file"),
    ("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n", 2, "No such file"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n", 2, "cannot use"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS10\n", 4,
     "min_version is 'TLS10'; one of: TLS12, TLS13"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [X]\n", 4,
     "cipher_suites is not supported by LMP"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
     4, "client_auth_type needs client_ca_file"),
    ("basic_auth_users:\n  alice: $2b$10$short\n", 2, "basic_auth_users.alice is not a bcrypt hash"),
    ("basic_auth_users:\n  alice: plain-text-password\n", 2, "not a bcrypt hash"),
    (f"basic_auth_users:\n  'a:b': {HASH}\n", 2, "is not a user name"),
    ("basic_auth_users: [alice]\n", 1, "basic_auth_users must be a mapping"),
    ("http_server_config:\n  http2: false\n", 1, "http_server_config is not supported by LMP"),
    ("tls_config: {}\n", 1, "tls_config is not a web config key"),
    ("tls_server_config: [\n", 2, "invalid YAML"),
    ("- a\n", 1, "a web config is a mapping"),
])
def test_bad_files_are_refused_with_line_and_reason(tmp_path: Path, text: str, line: int, reason: str) -> None:
    make_cert(tmp_path)
    make_cert(tmp_path, "other")  # a key that is not server.crt's
    path = write(tmp_path, text)
    with pytest.raises(YamlError) as caught:
        webconfig.load(path)
    assert (caught.value.path, caught.value.line) == (str(path), line), str(caught.value)
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(YamlError, match="web.yml: No such file"):
        webconfig.load(tmp_path / "web.yml")


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_checks_the_hash_and_remembers_a_pass() -> None:
    auth = BasicAuth(lambda environ, start: [b"ok"], {"prometheus": HASH})
    assert auth.allowed(header("prometheus", "right password"))
    assert len(auth.passed) == 1 and auth.allowed(header("prometheus", "right password"))
    for wrong in (header("prometheus", "wrong"), header("nobody", "right password"), "Bearer x", "Basic !!",
                  "Basic " + base64.b64encode(b"no colon").decode(), ""):
        assert not auth.allowed(wrong), wrong
    assert len(auth.passed) == 1  # failures are never remembered: each guess pays bcrypt's cost
    answered: list[str] = []
    body = auth({"HTTP_AUTHORIZATION": header("prometheus", "wrong")}, lambda status, headers: answered.append(
        status + " " + dict(headers)["WWW-Authenticate"]))
    assert answered == ['401 Unauthorized Basic realm="lmp", charset="UTF-8"'] and b"basic auth" in b"".join(body)


def test_the_config_names_its_web_config_line_and_the_web_configs_own(tmp_path: Path) -> None:
    from lmp import config

    write(tmp_path, "basic_auth_users:\n  alice: not-a-hash\n")
    text = "prometheus: {enabled: false}\nadmin: {enabled: false}\nweb_config: web.yml\ncollectors: {}\n"
    with pytest.raises(YamlError) as caught:
        config.loads(text, tmp_path / "lmp.yaml")
    assert caught.value.line == 3
    assert f"web_config: {tmp_path / 'web.yml'}:2: basic_auth_users.alice is not a bcrypt hash" in caught.value.reason
    write(tmp_path, f"basic_auth_users:\n  alice: {HASH}\n")
    assert config.loads(text, tmp_path / "lmp.yaml").web_config == str(tmp_path / "web.yml")
