"""Basic auth in front of an exporter's WSGI app, checked against the web config's bcrypt hashes.

bcrypt costs ~50-200 ms a check by design, too much for every scrape of every exporter. A credential that
has passed once is remembered by a keyed hash of it (never the password itself), so the next scrape
with it costs a dict lookup. Failures are not remembered: each guess pays the full bcrypt cost. An
unknown user is checked against a dummy hash, so that names cannot be told from passwords by timing."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from collections.abc import Callable, Iterable

import bcrypt

REALM = "lmp"


class BasicAuth:
    def __init__(self, app: Callable, users: dict[str, str]) -> None:
        self.app = app
        self.users = {name: hashed.encode() for name, hashed in users.items()}
        self.dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(rounds=self._cost()))
        self.key = os.urandom(32)  # keys the remembered credentials: unguessable, and gone when the process ends
        self.passed: set[bytes] = set()  # bounded: a user has one password that passes
        self.lock = threading.Lock()

    def _cost(self) -> int:
        """The users' own bcrypt cost, so that the dummy check takes as long as a real one."""
        costs = [int(h.split(b"$")[2]) for h in self.users.values()]
        return max(costs, default=10)

    def allowed(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            name, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        digest = hmac.new(self.key, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        with self.lock:
            if digest in self.passed:
                return True
        hashed = self.users.get(name)
        ok = bcrypt.checkpw(password.encode()[:72], hashed or self.dummy) and hashed is not None
        if ok:
            with self.lock:
                self.passed.add(digest)
        return ok

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if self.allowed(environ.get("HTTP_AUTHORIZATION", "")):
            return self.app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                            ("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')])
        return [b"unauthorized: this exporter needs basic auth (its web config's basic_auth_users)\n"]
