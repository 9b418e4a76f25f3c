"""Every command the learning path shows runs on this machine, page by page, in the order shown."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

from .commands import commands, script, unshown

SCRATCH = Path("/var/tmp")  # where a page that needs a real disk works (07: O_DIRECT writes)
PAGES = sorted((ROOT / "docs" / "learn").glob("[0-9]*.md"))


def test_the_path_has_its_steps_and_each_shows_commands():
    assert len(PAGES) >= 8
    for page in PAGES:
        assert commands(page.read_text()), f"{page.name} shows no command to run"


def test_console_blocks_are_read_as_a_reader_would():
    page = ("```console\n$ echo a \\\n  b\na b\n$ cat <<'EOF'\nx\nEOF\nx\n$ python3 -c 'print(1)\n> print(2)'\n1\n```\n"
            "```\n$ not a console block\n```\n")
    assert commands(page) == ["echo a \\\n  b", "cat <<'EOF'\nx\nEOF", "python3 -c 'print(1)\nprint(2)'"]
    assert unshown(page, "a b\nx\n1\n") == [] and unshown(page, "a b\nx\n7\n") == []  # numbers may differ
    assert unshown(page, "a\nx\n1\n") == ["a b"]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_every_command_of_the_page_runs(page: Path, tmp_path: Path):
    namespaces, scratch = netns(), set(SCRATCH.glob("lmp-learn.*"))
    run = subprocess.Popen(["bash", "-c", script(page)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True,
                           env={**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
                                "TMPDIR": str(tmp_path)})
    try:
        out, _ = run.communicate(timeout=540)
    finally:
        try:
            os.killpg(run.pid, signal.SIGKILL)  # anything the page started and left behind
        except ProcessLookupError:
            pass
        # A page cleans up after itself (asserted below); one that failed halfway may not have.
        left = [f"netns {n}" for n in netns() - namespaces]
        for name in netns() - namespaces:
            subprocess.run(["ip", "netns", "del", name], check=False)
        for folder in set(SCRATCH.glob("lmp-learn.*")) - scratch:
            left.append(str(folder))
            shutil.rmtree(folder, ignore_errors=True)
    assert run.returncode == 0, f"{page.name} failed:\n{out[-4000:]}"
    assert not unshown(page.read_text(), out), f"{page.name} shows output its commands no longer print:\n{out[-4000:]}"
    assert not left, f"{page.name} left {left} behind"


def netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}
