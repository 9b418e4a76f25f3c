"""The web config file: TLS and basic auth for the exporters and the admin, in the format of Prometheus'
exporter-toolkit (docs/web-configuration.md there), which Prometheus users already write:

    tls_server_config: {cert_file: server.crt, key_file: server.key}
    basic_auth_users: {prometheus: $2b$10$...}   # bcrypt hashes

Relative file names are the web config file's neighbours, as in the toolkit. LMP takes the toolkit's keys
that Python's ssl module can honour and refuses the others by name, rather than ignoring them silently.
Every error names the file, the line and the reason."""
from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import yamlfile
from .yamlfile import YamlError

BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}  # older ones are broken
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version"}
TOOLKIT_ONLY = {"cipher_suites", "curve_preferences", "prefer_server_cipher_suites", "client_allowed_sans",
                "cert", "key", "http_server_config", "rate_limit"}  # valid for the toolkit, not taken here


@dataclass
class TlsConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"
    max_version: str = "TLS13"

    def context(self) -> ssl.SSLContext:
        """A server-side context with the certificate loaded (OSError or ssl.SSLError if it cannot be)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version, ctx.maximum_version = VERSIONS[self.min_version], VERSIONS[self.max_version]
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.verify_mode = CLIENT_AUTH[self.client_auth_type]
        if self.client_ca_file:
            ctx.load_verify_locations(self.client_ca_file)
        return ctx


@dataclass
class WebConfig:
    path: Path
    tls: TlsConfig | None = None
    users: dict[str, str] = field(default_factory=dict)  # name -> bcrypt hash

    def plain(self) -> dict[str, Any]:
        """The toolkit format again, with absolute file names (for a copy written elsewhere)."""
        out: dict[str, Any] = {}
        if self.tls:
            out["tls_server_config"] = {k: str(v) for k, v in vars(self.tls).items() if v is not None}
        if self.users:
            out["basic_auth_users"] = dict(self.users)
        return out


def load(path: Path) -> WebConfig:
    try:
        text = path.read_text()
    except OSError as err:
        raise YamlError(path, None, err.strerror or str(err)) from None
    return loads(text, path)


def loads(text: str, path: Path) -> WebConfig:
    doc = _json(text) if text.lstrip().startswith("{") else None
    doc = doc if doc is not None else yamlfile.parse(text, path)
    if doc is None:
        return WebConfig(path)  # an empty file is the toolkit's "no TLS, no auth"
    if not isinstance(doc, dict):
        raise YamlError(path, 1, "a web config is a mapping (tls_server_config, basic_auth_users)")
    for key in doc:
        if key not in ("tls_server_config", "basic_auth_users"):
            why = "is not supported by LMP" if key in TOOLKIT_ONLY else "is not a web config key"
            raise YamlError(path, yamlfile.line_of(doc, [key]), f"{key} {why} "
                                                                 f"(keys: tls_server_config, basic_auth_users)")
    web = WebConfig(path)
    if doc.get("tls_server_config") is not None:
        web.tls = _tls(path, doc)
    if doc.get("basic_auth_users") is not None:
        web.users = _users(path, doc)
    return web


def _json(text: str) -> Any:
    """The copy `lmp run` writes for its exporters is JSON (which is YAML): the standard library reads it
    for about 1.5 MB less private memory per forked exporter than ruamel's round-trip parser."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return None  # not JSON after all: YAML flow style, read below


def _section(path: Path, doc: Any, key: str) -> dict[str, Any]:
    section = doc[key]
    if not isinstance(section, dict):
        raise YamlError(path, yamlfile.line_of(doc, [key]), f"{key} must be a mapping")
    return section


def _tls(path: Path, doc: Any) -> TlsConfig:
    raw = _section(path, doc, "tls_server_config")

    def where(key: str) -> int | None:
        return yamlfile.line_of(doc, ["tls_server_config", key])

    for key, value in raw.items():
        if key not in TLS_KEYS:
            why = "is not supported by LMP" if key in TOOLKIT_ONLY else "is not a tls_server_config key"
            raise YamlError(path, where(key), f"tls_server_config.{key} {why} (keys: {', '.join(sorted(TLS_KEYS))})")
        if not isinstance(value, str) or not value:
            raise YamlError(path, where(key), f"tls_server_config.{key} must be a non-empty string")
    for key in ("cert_file", "key_file"):
        if key not in raw:
            raise YamlError(path, yamlfile.line_of(doc, ["tls_server_config"]), f"tls_server_config needs {key}")
    for key, allowed in (("min_version", VERSIONS), ("max_version", VERSIONS), ("client_auth_type", CLIENT_AUTH)):
        if key in raw and raw[key] not in allowed:
            raise YamlError(path, where(key), f"tls_server_config.{key} is {raw[key]!r}; one of: {', '.join(allowed)}")
    files = {k: (path.parent / raw[k]).resolve() for k in ("cert_file", "key_file", "client_ca_file") if k in raw}
    tls = TlsConfig(**files, **{k: str(raw[k]) for k in ("client_auth_type", "min_version", "max_version") if k in raw})
    if tls.client_auth_type != "NoClientCert" and tls.client_ca_file is None:
        raise YamlError(path, where("client_auth_type"), "client_auth_type needs client_ca_file")
    try:
        tls.context()  # a certificate that does not load, or a key that is not its key, is said now
    except (OSError, ssl.SSLError) as err:
        reason = getattr(err, "strerror", None) or getattr(err, "reason", None) or str(err)
        culprit = next((k for k, f in files.items() if not f.is_file()), "cert_file")
        raise YamlError(path, where(culprit), f"tls_server_config: cannot use {files[culprit]}: {reason}") from None
    return tls


def _users(path: Path, doc: Any) -> dict[str, str]:
    raw = _section(path, doc, "basic_auth_users")
    users = {}
    for name, hashed in raw.items():
        line = yamlfile.line_of(doc, ["basic_auth_users", name])
        if not isinstance(name, str) or not name or ":" in name:
            raise YamlError(path, line, f"basic_auth_users: {name!r} is not a user name (non-empty, no ':')")
        if not isinstance(hashed, str) or not BCRYPT.match(hashed):
            raise YamlError(path, line, f"basic_auth_users.{name} is not a bcrypt hash ($2b$10$ and 53 more "
                                        f"characters; make one with htpasswd -nbBC 10 NAME PASSWORD)")
        users[name] = hashed
    return users
