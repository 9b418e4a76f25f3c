"""Finding collectors: a collector is a folder exporters/<name>/ holding <name>.yaml and <name>.bpf.c."""
from __future__ import annotations

from pathlib import Path

from . import spec as specs
from .spec import Spec

EXPORTERS_DIR = Path(__file__).resolve().parent.parent


def directories(extra: list[Path] | None = None) -> list[Path]:
    """Where collectors are looked for: the project's exporters/ first, then any extra folders."""
    return [EXPORTERS_DIR, *(extra or [])]


def names(extra: list[Path] | None = None) -> list[str]:
    found: set[str] = set()
    for top in directories(extra):
        for sub in top.iterdir() if top.is_dir() else ():
            if (sub / f"{sub.name}.yaml").is_file() and not sub.name.startswith(("_", ".")):
                found.add(sub.name)
    return sorted(found)


def spec_path(name: str, extra: list[Path] | None = None) -> Path | None:
    for top in directories(extra):
        candidate = top / name / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


def load(name: str, extra: list[Path] | None = None) -> Spec:
    """The spec of collector `name`; KeyError when there is none, YamlError when it is invalid."""
    path = spec_path(name, extra)
    if path is None:
        raise KeyError(name)
    return specs.load(path)
