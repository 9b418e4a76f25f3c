"""The one way the admin writes config/lmp.yaml: PUT /config, enable/disable and policy edits all come here.

Each write holds a lock across read, check and write, so that two requests never interleave: of two edits
made from the same version (the same ETag) exactly one wins. The candidate is checked as text, in memory,
never through a file another request could overwrite. The lock is flock(2) on the config's directory:
it needs no file of its own, serialises the threads of one process and other processes alike, and the
kernel drops it when its holder dies, kill -9 included."""
from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

from flask import current_app
from flask_smorest import abort
from ruamel.yaml import YAML

from exporters._lib.yamlfile import YamlError
from lmp import config as configs


class Stale(Exception):
    """The file changed since the client read it (If-Match does not match)."""


class Refused(Exception):
    """The candidate config is wrong; `error` says where and why, and nothing was written."""

    def __init__(self, error: YamlError) -> None:
        super().__init__(str(error))
        self.error = error


def etag(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@contextmanager
def locked(target: Path) -> Iterator[None]:
    fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def check(target: Path, text: str) -> configs.Config:
    """The config `text` would be, or Refused; errors name the file as `lmp.yaml:LINE: reason`."""
    try:
        return configs.loads(text, target.name)
    except YamlError as err:
        raise Refused(err) from None


def write_atomically(target: Path, text: str) -> None:
    """Temporary file, fsync, rename: a reader sees the old file or the new one, never half of one. The
    previous version is kept as <name>.bak; the file keeps its mode."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o7777)
            backup = target.with_name(target.name + ".bak")
            backup.unlink(missing_ok=True)
            os.link(target, backup)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace(target: Path, text: str, matches: Callable[[str], bool],
            guard: Callable[[configs.Config | None, configs.Config, str], None] | None = None) -> str:
    """Replace the whole file with `text` if `matches(current ETag)`, else Stale; Refused if `text` is
    wrong (or `guard(current, candidate, text)` raises Refused; current is None when the file on disk is
    broken, which a good text may replace). Returns the new ETag."""
    with locked(target):
        current = target.read_text()
        if not matches(etag(current)):
            raise Stale()
        candidate = check(target, text)
        if guard is not None:
            try:
                before: configs.Config | None = configs.loads(current, target.name)
            except YamlError:
                before = None
            guard(before, candidate, text)
        write_atomically(target, text)
    return etag(text)


def edit(target: Path, name: str, change: Callable[[Any], None]) -> None:
    """Change collector `name`'s entry (made if it has none), keeping the file's comments and layout. The file on disk must be
    valid (else YamlError, as any read of it), and so must the result (else Refused)."""
    with locked(target):
        text = target.read_text()
        configs.loads(text, target.name)  # no edit of a broken file: it is fixed first (PUT /config)
        yaml = YAML(typ="rt")
        yaml.indent(mapping=2, sequence=4, offset=2)  # the shipped file's layout: lists indented under their key
        yaml.width = 4096  # and no line rewrapped
        doc = yaml.load(text)
        if doc.get("collectors") is None:
            doc["collectors"] = {}
        collectors = doc["collectors"]
        if collectors.get(name) is None:  # the spec's defaults until now: the entry starts empty
            collectors[name] = {}
        change(collectors[name])
        out = StringIO()
        yaml.dump(doc, out)
        check(target, out.getvalue())
        write_atomically(target, out.getvalue())


def clean(target: Path) -> list[Path]:
    """Remove the temporary files of writes that died half-way (kill -9 between mkstemp and rename); under
    the lock, so that no live write's file goes. Returns what was removed."""
    if not target.parent.is_dir():
        return []
    with locked(target):
        leftovers = list(target.parent.glob(f".{target.name}.*"))
        for path in leftovers:
            path.unlink(missing_ok=True)
    return leftovers


# --- the config file this app serves, for the resources that read or change it ----------------------------

def path() -> Path:
    return Path(current_app.config.get("LMP_CONFIG") or configs.path_from_env())


def current() -> configs.Config:
    return configs.load(path())


def edit_entry(name: str, change: Callable[[Any], None]) -> None:
    """edit() the served file, a wrong result answered 422 with its line and reason."""
    try:
        edit(path(), name, change)
    except Refused as err:
        abort(422, message=str(err), errors={"line": err.error.line, "reason": err.error.reason})


def set_enabled(name: str, enabled: bool) -> None:
    """Turn a collector on or off in the config file, keeping its comments and layout."""
    edit_entry(name, lambda entry: entry.__setitem__("enabled", enabled))
