"""The import graph matches LMP's parts. The core (exporters/) knows nothing of the rest; the admin never
imports the CLI, the launcher or the dashboards generator; and each part, imported alone in a fresh
interpreter, pulls in only what it needs: no Flask in an exporter, no grafanalib in the admin, no admin in
the bench."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Each part, and the parts it may import. A module belongs to the longest prefix listed.
PARTS: dict[str, set[str]] = {
    "exporters": set(),  # the core: specs, the loader, the exporter, the function-component runtime
    "lmp.config": {"exporters"},  # the config model, read by the launcher, the admin and the bench
    "lmp.spawner": {"exporters", "lmp.config"},  # forks exporters from a process that holds little
    "lmp.supervisor": {"exporters", "lmp.config", "lmp.spawner"},  # the exporter processes and their state
    "lmp.prometheus": {"exporters", "lmp.config", "lmp.spawner"},
    "lmp.webservice": {"exporters"},  # the service user through which lmp run reaches exporters behind auth
    "lmp.launcher": {"exporters", "lmp.config", "lmp.supervisor", "lmp.spawner", "lmp.prometheus", "lmp.webservice"},
    "lmp.run": {"exporters", "lmp.config", "lmp.supervisor", "lmp.spawner", "lmp.launcher", "lmp.prometheus",
                "admin"},
    "lmp.doctor": {"exporters", "lmp.config"},
    "lmp.top": {"exporters", "lmp.config"},  # containers by what the collectors serve: the CLI's and the admin's
    "lmp.docsite": {"exporters", "admin"},
    "lmp.cli": {"*"},  # the CLI dispatches to every part
    "lmp.__main__": {"lmp.cli"},
    "lmp": set(),
    "admin": {"exporters", "lmp.config", "lmp.supervisor", "lmp.top", "scenario"},
    "dashboards": {"exporters"},
    "scenario": {"exporters"},
    "bench": {"exporters", "lmp.config", "lmp.supervisor", "lmp.spawner", "lmp.launcher", "lmp.prometheus", "testkit"},
    "testkit": {"exporters"},  # helpers the tests and the bench share
    "workload": {"exporters", "testkit"},  # exporters/NAME/workload.py: what makes a collector's panels move
}
TOPS = ("exporters", "lmp", "admin", "dashboards", "scenario", "bench", "testkit")


def part_of(module: str) -> str | None:
    if module.startswith("exporters.") and module.endswith(".workload"):
        return "workload"
    found = [p for p in PARTS if module == p or module.startswith(p + ".")]
    return max(found, key=len) if found else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (a lazy import is an import too)."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (package[:len(package) - node.level + 1] if node.level else [])
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from lmp import config`
    return {m for m in found if m.split(".")[0] in TOPS}


def edges() -> list[tuple[str, str, str]]:
    """(file, its part, a part it imports) for every import between parts."""
    out = []
    for top in TOPS:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "node_modules" in path.parts or "_scaffold" in path.parts:
                continue
            mine = part_of(module_name(path))
            for module in imports(path):
                theirs = part_of(module)
                if theirs and mine and theirs != mine and not module_name(path).startswith(theirs + "."):
                    out.append((str(path.relative_to(ROOT)), mine, theirs))
    return out


def test_every_import_between_parts_is_an_intended_one():
    wrong = [(f, mine, theirs) for f, mine, theirs in edges()
             if "*" not in PARTS[mine] and not any(theirs == p or theirs.startswith(p + ".") for p in PARTS[mine])
             and theirs != "lmp"]
    assert not wrong, "\n".join(f"{f}: {mine} must not import {theirs}" for f, mine, theirs in wrong)


def test_the_part_graph_has_no_cycles():
    graph: dict[str, set[str]] = {}
    for _, mine, theirs in edges():
        graph.setdefault(mine, set()).add(theirs)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))
    cycles = [p for p in graph if reaches(p, p, set())]
    assert not cycles, f"parts on a cycle: {cycles}"


EVERY_MODULE = ("import importlib, pkgutil, {0}; "
                "[importlib.import_module(m.name) for m in pkgutil.walk_packages({0}.__path__, '{0}.')]")
# What importing each part's entry point loads, in a fresh interpreter: modules it must never bring in.
FRESH = [
    ("an exporter (a collector)", "from exporters._lib import exporter, catalog, paths; from lmp import config; "
     "config.entry(paths.DEFAULT_CONFIG, catalog.load('syscalls', check=False))",
     ["flask", "sqlalchemy", "jsonschema", "grafanalib", "bcc", "admin", "dashboards", "lmp.cli", "lmp.run",
      "exporters._lib.function", "scenario", "bench"]),
    ("the admin", EVERY_MODULE.format("admin"),
     ["grafanalib", "dashboards", "lmp.cli", "lmp.run", "bench", "bcc"]),
    ("the dashboards generator", "import dashboards; dashboards.generate()",
     ["flask", "sqlalchemy", "admin", "lmp.cli", "lmp.run", "bench", "bcc"]),
    ("the bench", EVERY_MODULE.format("bench"),
     ["flask", "sqlalchemy", "admin", "grafanalib", "dashboards", "lmp.cli"]),
    ("the launcher", "import lmp.run",
     ["flask", "sqlalchemy", "admin", "grafanalib", "dashboards", "lmp.cli", "bench", "bcc"]),
]


@pytest.mark.parametrize("what, code, never", FRESH, ids=[f[0] for f in FRESH])
def test_each_part_alone_loads_nothing_it_must_not(what, code, never):
    probe = f"import sys; {code}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    pulled = sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in never))
    assert not pulled, f"{what} loads {pulled}"
