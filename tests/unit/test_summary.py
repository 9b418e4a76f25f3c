"""`lmp run`'s printed summary says whether the admin may run commands as root, and where to change it."""
from __future__ import annotations

from exporters._lib import paths
from lmp import config as configs
from lmp.launcher import summary


def test_the_summary_names_the_command_switch(tmp_path):
    path = tmp_path / "lmp.yaml"
    path.write_text(paths.DEFAULT_CONFIG.read_text())
    off = summary(configs.load(path), None, [], False)
    assert f"running commands as root: off (admin.scenario_commands in {path}" in off
    path.write_text(path.read_text().replace("scenario_commands: false", "scenario_commands: true"))
    assert "running commands as root: ON" in summary(configs.load(path), None, [], False)
