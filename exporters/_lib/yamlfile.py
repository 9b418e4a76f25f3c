"""Load a YAML file and validate it against a JSON schema, with errors that name the file and line."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError


class YamlError(ValueError):
    """A YAML file that cannot be used; str() is `file:line: reason`, ready to show a user."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {reason}")


@cache
def load_schema(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def parse(text: str, path: Path | str) -> Any:
    """Parse YAML text, keeping line numbers (ruamel's round-trip nodes carry them)."""
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        raise YamlError(path, line, f"invalid YAML: {err.problem or err.context}") from None


def plain(node: Any) -> Any:
    """ruamel's round-trip nodes as plain dicts, lists, str, int, float and bool (for jsonschema, JSON and
    the components' policies)."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    for kind in (bool, int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def line_of(doc: Any, location: list[str | int]) -> int | None:
    """The 1-based line of the deepest node along `location` that still carries a position."""
    node, line = doc, None
    for key in location:
        if isinstance(node, CommentedMap) and key in node:
            line = node.lc.key(key)[0] + 1
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
            line = node.lc.item(key)[0] + 1
        else:
            break
        node = node[key]
    return line


def schema_error(instance: Any, schema: dict[str, Any]) -> tuple[list[str | int], list[str | int], str] | None:
    """The most relevant way `instance` breaks `schema`, or None: (the path to it, the path to point at for
    its line, the message). An unexpected key is pointed at itself, not at its parent."""
    import jsonschema  # here: a running exporter reads specs the build already checked, without it

    validator = jsonschema.Draft202012Validator(schema)
    err = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if err is None:
        return None
    location = list(err.absolute_path)
    message = err.message
    if err.validator == "pattern" and "description" in err.schema:  # say what is wanted, not the regex
        message = f"{err.instance!r} is not {err.schema['description']}"
    if err.validator == "additionalProperties":
        parent = err.instance if isinstance(err.instance, dict) else {}
        extra = [k for k in parent if k not in err.schema.get("properties", {})]
        location += extra[:1]
    return list(err.absolute_path), location, message


def validate(doc: Any, schema_path: Path, path: Path | str, definition: str | None = None) -> None:
    """Check `doc` against the schema file, or against one of its `$defs` when `definition` names it."""
    schema = load_schema(schema_path)
    if definition:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    found = schema_error(doc, schema)
    if found is not None:
        at, location, message = found
        where = ".".join(str(p) for p in at) or "top level"
        raise YamlError(path, line_of(doc, location), f"{where}: {message}")


def load(path: Path, schema_path: Path, definition: str | None = None, check: bool = True) -> Any:
    """Read, parse and (unless told not to) validate `path`; raise YamlError naming the file and line of
    the first problem."""
    try:
        text = path.read_text()
    except OSError as err:
        raise YamlError(path, None, err.strerror or str(err)) from None
    doc = parse(text, path)
    if doc is None:
        raise YamlError(path, None, "the file is empty")
    if check:
        validate(doc, schema_path, path, definition)
    return doc
