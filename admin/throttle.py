"""Throttling of password guesses: failed logins and failed password changes are counted in buckets, and a
full bucket answers 429 with Retry-After until it drains.

Login has three buckets: this client and this name (LOGIN_RATE_LIMIT), this name from anywhere
(LOGIN_ACCOUNT_RATE_LIMIT, against guessing from many addresses) and this client for any name
(LOGIN_CLIENT_RATE_LIMIT, far larger, against spraying one password over many names). So guesses at one
name lock out that name, never another, short of a client's spraying cap. Only failures count: a user who
logs in often is never throttled. The buckets live in flask-limiter's storage (RATELIMIT_STORAGE_URI),
counted by the `limits` library's moving window."""
from __future__ import annotations

import math
import time

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import abort
from limits import RateLimitItem, parse

limiter = Limiter(key_func=get_remote_address)
DEFAULTS = {"LOGIN_RATE_LIMIT": "5 per minute", "LOGIN_ACCOUNT_RATE_LIMIT": "20 per minute",
            "LOGIN_CLIENT_RATE_LIMIT": "100 per minute", "PASSWORD_CHANGE_RATE_LIMIT": "5 per minute"}


def _buckets(kind: str, account: str) -> list[tuple[RateLimitItem, str]]:
    setting = lambda name: parse(current_app.config.get(name, DEFAULTS[name]))  # noqa: E731
    client = get_remote_address()
    if kind == "login":
        return [(setting("LOGIN_RATE_LIMIT"), f"login|{client}|{account}"),
                (setting("LOGIN_ACCOUNT_RATE_LIMIT"), f"login||{account}"),
                (setting("LOGIN_CLIENT_RATE_LIMIT"), f"login|{client}|")]
    return [(setting("PASSWORD_CHANGE_RATE_LIMIT"), f"password|{account}")]


def check(kind: str, account: str) -> None:
    """429 with Retry-After when a bucket of `kind` ("login" or "password") for `account` is full."""
    strategy = limiter.limiter
    for item, key in _buckets(kind, account):
        if not strategy.test(item, key):
            reset, _ = strategy.get_window_stats(item, key)
            wait = max(1, math.ceil(reset - time.time()))
            what = "logins for this name" if kind == "login" else "password changes"
            abort(429, message=f"too many failed {what}; try again in {wait} s", headers={"Retry-After": str(wait)})


def failed(kind: str, account: str) -> None:
    """Count a failed attempt in every bucket of `kind`."""
    for item, key in _buckets(kind, account):
        limiter.limiter.hit(item, key)
