"""Every error is JSON {"code", "status", "message"}. flask-smorest's Api answers HTTP errors so; this
adds the same shape for an unexpected exception, which must never leak a traceback."""
from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import HTTPException


def register(app: Flask) -> None:
    @app.errorhandler(Exception)
    def unexpected(err: Exception):  # type: ignore[no-untyped-def]
        if isinstance(err, HTTPException):  # already an answer: keep it
            return err
        app.logger.exception("unhandled error")
        return {"code": 500, "status": "Internal Server Error", "message": "internal error; see the log"}, 500
