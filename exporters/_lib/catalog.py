"""Finding collectors: a collector is a folder exporters/<name>/ holding <name>.yaml and <name>.bpf.c."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from . import spec as specs
from .paths import EXPORTERS_DIR
from .spec import Spec


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


def load(name: str, extra: list[Path] | None = None, check: bool = True) -> Spec:
    """The spec of collector `name`; KeyError when there is none, YamlError when it is invalid. check=False
    skips the validation a running exporter leaves to `lmp build`."""
    path = spec_path(name, extra)
    if path is None:
        raise KeyError(name)
    stat = path.stat()
    return _load(path, stat.st_mtime_ns, stat.st_size, check)


@lru_cache(maxsize=256)
def _load(path: Path, _mtime_ns: int, _size: int, check: bool) -> Spec:
    """Specs parsed once per version of their file: parsing one takes ~10 ms (ruamel), and the config, the
    admin's catalog and its supervisor (every second) load every spec. Callers do not change them."""
    return specs.load(path, check)
