"""A function component's policy: checked three ways. Against the JSON schema in the component's spec; by
its own policy.py (CIDRs, ports: `parse`); and against the host (`check`: the interfaces and cgroups it
names must exist). The config loader, the admin's API and the running component all check it here."""
from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from .. import yamlfile
from ..spec import Spec
from . import links
from .links import TargetError


class PolicyError(ValueError):
    """A policy that cannot be used: where in the policy (keys from its top) and why."""

    def __init__(self, location: tuple[str | int, ...], reason: str) -> None:
        self.location, self.reason = location, reason
        super().__init__(f"{'.'.join(map(str, location)) or 'policy'}: {reason}")


def component(spec: Spec) -> ModuleType:
    """The component's policy.py, beside its spec."""
    return _module(spec.name, spec.directory / "policy.py")


@cache
def _module(name: str, path: Path) -> ModuleType:
    module_spec = importlib.util.spec_from_file_location(f"lmp_function_{name}", path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"{name}: no {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # dataclasses look their module up there
    module_spec.loader.exec_module(module)
    return module


def parse(spec: Spec, raw: Any) -> Any:
    """The policy as the component uses it, from its plain form (a mapping); PolicyError if it is wrong."""
    found = yamlfile.schema_error(raw, spec.policy or {})
    if found is not None:
        _, location, message = found
        raise PolicyError(tuple(location), message)
    return component(spec).parse(raw)


def check(spec: Spec, policy: Any) -> dict[str, tuple[str, str, int]]:
    """The links the policy needs ("hook:target" -> (hook, target, flags)), each target checked on this host:
    TargetError names one that does not exist, or two interfaces the XDP program cannot tell apart."""
    wanted: dict[str, tuple[str, str, int]] = {}
    seen: dict[int, str] = {}
    for target, flags in component(spec).targets(policy).items():
        for hook in spec.programs:
            where = links.resolve(hook, target)
            if isinstance(where, int):
                if where in seen and seen[where] != target:
                    raise TargetError(f"interfaces {seen[where]} and {target} have the same index ({where}) in "
                                      f"their namespaces; one netguard cannot tell their packets apart")
                seen[where] = target
            wanted[f"{hook}:{target}"] = (hook, target, flags)
    return wanted


@dataclass
class PolicySource:
    """Where the policy comes from: the config file, re-read when it changes."""
    path: Path
    read: Callable[[], Any]  # the policy's plain form, from a fresh read of the file; YamlError if it is bad

    def stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size  # the admin replaces the file: a new inode
