"""scripts/install.sh: idempotent, and one clear line when it cannot work."""
from __future__ import annotations

import json
import subprocess

from tests.conftest import ROOT, run_lmp

INSTALL = ROOT / "scripts" / "install.sh"


def test_second_install_finds_everything_in_place():
    result = subprocess.run(["bash", str(INSTALL), "--test"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""  # nothing installed, nothing to say
    assert (ROOT / ".venv" / "bin" / "lmp").exists()


def test_install_refuses_non_root_in_one_line():
    result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", str(INSTALL)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "run as root" in result.stderr


def test_list_shows_every_collector_runs_here():
    result = run_lmp("list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"syscalls", "runqlat", "biolatency"} <= set(rows)
    for name in ("syscalls", "runqlat", "biolatency"):
        assert rows[name]["can_run"] and rows[name]["enabled"], rows[name]
    table = run_lmp("list").stdout
    assert "runqlat" in table and "127.0.0.1:9452" in table
