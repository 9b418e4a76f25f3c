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


def test_collectors_need_no_kernel_headers():
    """What a container (or a host whose kernel has no headers package) gets: in a private mount namespace
    whose /lib/modules is empty, `--kernel` is content, links nothing, and a collector loads its CO-RE
    object and counts: libbpf fits it to the kernel through BTF alone."""
    count = ("from exporters._lib import bpf, catalog; import os; spec = catalog.load('syscalls', check=False); "
             "l = bpf.load(spec, {o.name: o.default for o in spec.options.values()}); os.getpid(); "
             "print('calls', sum(l.maps['syscalls_total'].words(v, 0, 1)[0] for _, v in l.maps['syscalls_total'].items())); "
             "l.close()")
    script = (f"mount -t tmpfs lmp-test /lib/modules && bash {INSTALL} --kernel && "
              f"test ! -e /lib/modules/$(uname -r) && {ROOT}/.venv/bin/python -c \"{count}\"")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "linked" not in result.stdout
    assert int(result.stdout.split("calls ")[1]) > 0
