"""Every error is JSON {"code", "status", "message"}. flask-smorest's Api answers HTTP errors so; this
adds the same shape for an unexpected exception, which must never leak a traceback, for a config file
broken on disk, and the Allow header that a 405 must carry (RFC 9110, 15.5.6)."""
from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from exporters._lib.yamlfile import YamlError


def register(app: Flask) -> None:
    @app.errorhandler(MethodNotAllowed)
    def not_allowed(err: MethodNotAllowed):  # type: ignore[no-untyped-def]
        allowed = ", ".join(sorted(err.valid_methods or []))
        return ({"code": 405, "status": "Method Not Allowed", "message": f"allowed here: {allowed}"}, 405,
                {"Allow": allowed})

    @app.errorhandler(YamlError)
    def broken_config(err: YamlError):  # type: ignore[no-untyped-def]
        # The file was edited by hand (the API never writes a bad one): not the request's fault, nor a
        # crash. Say what is wrong and where; the supervisor keeps running the last good config.
        return {"code": 409, "status": "Conflict",
                "message": f"the config file is broken: {err}; fix it on the host or with PUT /api/v1/config "
                           f"(the exporters keep running as the last good config says)",
                "errors": {"line": err.line, "reason": err.reason}}, 409

    @app.errorhandler(Exception)
    def unexpected(err: Exception):  # type: ignore[no-untyped-def]
        if isinstance(err, HTTPException):  # already an answer: keep it
            return err
        app.logger.exception("unhandled error")
        return {"code": 500, "status": "Internal Server Error", "message": "internal error; see the log"}, 500
