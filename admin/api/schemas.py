"""Request and response bodies (marshmallow), which also describe the API in its OpenAPI document."""
from datetime import timezone

from marshmallow import Schema, fields, validate

from ..models import NAME as NAME_PATTERN
from ..models import ROLES
from ..passwords import MAX_LENGTH, MIN_LENGTH

NAME = fields.String(required=True, validate=validate.Regexp(NAME_PATTERN))


class UtcDateTime(fields.DateTime):
    """SQLite hands back naive datetimes; they are stored in UTC, so say so (RFC 3339 needs the offset)."""

    def _serialize(self, value, attr, obj, **kwargs):  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return super()._serialize(value, attr, obj, **kwargs)


UTC_TIME = UtcDateTime(dump_only=True)
# Length here; whether it is too common to use is checked with the user's name (admin/passwords.py).
PASSWORD = fields.String(required=True, load_only=True, validate=validate.Length(
                             min=MIN_LENGTH, max=MAX_LENGTH, error="the password needs at least {min} characters, {max} at most"),
                         metadata={"description": f"{MIN_LENGTH} characters or more, and not a common leaked one"})


class Login(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=256))


class Tokens(Schema):
    access_token = fields.String()
    refresh_token = fields.String()


class NewUser(Schema):
    name = NAME
    password = PASSWORD
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class User(Schema):
    name = fields.String()
    role = fields.String()
    created_at = UTC_TIME


class RoleChange(Schema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class PasswordChange(Schema):
    old_password = fields.String(required=True, load_only=True)
    new_password = PASSWORD


class Metric(Schema):
    name = fields.String()
    type = fields.String()
    help = fields.String()
    labels = fields.List(fields.String())


class CgroupName(Schema):
    cgroup = fields.String()
    name = fields.String(metadata={"description": "container name, else systemd unit, else pod UID, else the path"})
    kind = fields.String(metadata={"description": "the container runtime, or unit, pod, cgroup"})


class Component(Schema):
    name = fields.String()
    kind = fields.String()
    description = fields.String()
    overhead = fields.String()
    hooks = fields.List(fields.String())
    metrics = fields.List(fields.Nested(Metric))
    can_run = fields.Boolean()
    why_not = fields.String()
    enabled = fields.Boolean()
    listen = fields.String(allow_none=True)
    running = fields.Boolean()
    pid = fields.Integer(allow_none=True)
    uptime_seconds = fields.Float(allow_none=True)
    restarts = fields.Integer()
    last_error = fields.String()
    crash_loop = fields.Boolean()
    series = fields.Integer(allow_none=True, metadata={"description": "series the last scrape exported"})
    series_budget = fields.Integer(allow_none=True)
    cgroups = fields.List(fields.Nested(CgroupName), metadata={"description": "the cgroups it shows, named"})


class Query(Schema):
    expr = fields.String()
    legend = fields.String()


class Chart(Schema):
    id = fields.Integer()
    title = fields.String()
    description = fields.String()
    unit = fields.String()
    queries = fields.List(fields.Nested(Query))


class BoardQuery(Schema):
    cgroup = fields.String(validate=validate.Regexp(r"^[^\x00-\x1f\x7f]{1,4096}\Z"), metadata={
        "description": "one cgroup (its path, as the cgroup label says): the charts whose metrics carry a cgroup "
                       "show its series only, as the Grafana dashboard does with var-cgroup"})


class ChartQuery(BoardQuery):
    minutes = fields.Integer(load_default=15, validate=validate.Range(min=1, max=24 * 60))


class Series(Schema):
    name = fields.String()
    values = fields.List(fields.List(fields.Float()))  # [unix time, value] pairs


class ChartData(Schema):
    title = fields.String()
    unit = fields.String()
    step = fields.Float()
    series = fields.List(fields.Nested(Series))


class TargetGroup(Schema):
    targets = fields.List(fields.String())
    labels = fields.Dict(keys=fields.String(), values=fields.String())


class AuditQuery(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class AuditEvent(Schema):
    at = UTC_TIME
    actor = fields.String()
    action = fields.String()
    target = fields.String()
    detail = fields.String(metadata={"description": "the whole of what was done, e.g. a command's argv (JSON)"})


# An error answer in the OpenAPI document, for responses described by hand (flask-smorest's own are so).
ERROR = {"$ref": "#/components/schemas/Error"}
REFUSED = {"content": {"application/json": {"schema": ERROR}}}
