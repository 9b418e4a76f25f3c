"""Request bodies the API will read: at most MAX_CONTENT_LENGTH bytes however they are sent, and JSON at
most MAX_DEPTH levels deep.

Werkzeug refuses a Content-Length over the limit with 413, but a chunked body (no Content-Length) is only
read up to the limit and silently cut there: a config cut at 1 MiB could be saved. BoundedBody reads such
a body whole, up to one byte past the limit, before the app sees it. Either way, what the client still
sends is read and dropped (up to a bound) before the 413, so that it can read the answer.

Python's json parser recurses, so a body nested thousands deep raises RecursionError, not a ValueError
that Flask answers with 400; and every recursive walk after it (schemas, YAML) meets the same depth.
The API's documents are a few levels deep, so anything past MAX_DEPTH is refused up front."""
from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any, Callable

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import abort
from werkzeug.exceptions import BadRequest

MAX_DEPTH = 32
TOO_LARGE = json.dumps({"code": 413, "status": "Content Too Large",
                        "message": "the body is larger than this service accepts"}).encode()


class BoundedBody:
    """WSGI middleware: a body without Content-Length is read here, and refused when too large."""

    def __init__(self, app: Callable, limit: Callable[[], int | None]) -> None:
        self.app, self.limit = app, limit

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        limit = self.limit()
        if limit is None:
            return self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH")
        if length and length.isdigit() and int(length) > limit:
            return self.too_large(environ, start_response, limit)
        if not length and environ.get("wsgi.input_terminated"):
            body = environ["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                return self.too_large(environ, start_response, limit)
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        return self.app(environ, start_response)

    @staticmethod
    def too_large(environ: dict, start_response: Callable, limit: int) -> Iterable[bytes]:
        drain(environ["wsgi.input"], 4 * limit)
        start_response("413 Content Too Large", [("Content-Type", "application/json"),
                                                 ("Content-Length", str(len(TOO_LARGE))), ("Connection", "close")])
        return [TOO_LARGE]


def drain(stream: Any, most: int) -> None:
    """Read and drop what the client still sends, up to `most` bytes, before answering 413: closing on a
    body still arriving resets the connection, and the client may never read the answer."""
    while most > 0 and (chunk := stream.read(min(most, 65536))):
        most -= len(chunk)


def depth(value: Any) -> int:
    """How deeply lists and objects nest in `value`, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


class BoundedJSON(DefaultJSONProvider):
    """Flask's JSON, refusing documents nested past MAX_DEPTH as invalid JSON (a 400)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError(f"JSON nested more than {MAX_DEPTH} levels deep") from None
        if depth(value) > MAX_DEPTH:
            raise ValueError(f"JSON nested more than {MAX_DEPTH} levels deep")
        return value


def refuse_deep_json() -> None:
    """before_request: parse a JSON body once, through BoundedJSON, so that nothing after (webargs parses
    with the standard library) sees one too deep."""
    if request.is_json and request.content_length:
        try:
            request.get_json()
        except BadRequest:
            abort(400, message=f"the body is not JSON, or nests more than {MAX_DEPTH} levels deep")


def install(app: Flask) -> None:
    app.json_provider_class = BoundedJSON
    app.json = BoundedJSON(app)
    app.wsgi_app = BoundedBody(app.wsgi_app, lambda: app.config.get("MAX_CONTENT_LENGTH"))  # type: ignore[method-assign]
    app.before_request(refuse_deep_json)
