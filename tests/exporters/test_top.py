"""lmp top against real exporters: a service-like cgroup that sends a known number of signals (kill syscalls)
and faults pages is a row, named by its unit, with that many signals in the interval, and it sorts first."""
from __future__ import annotations

import subprocess
import sys

from lmp import top
from tests.conftest import LMP, made_cgroup
from tests.exporters.test_identity import SENDS, run_in


def test_a_busy_service_is_a_named_row_with_its_exact_count(exporter):
    signals = exporter("signal", "-o", "cgroup=true")
    faults = exporter("pagefault")
    calls = exporter("syscalls", "-o", "cgroup=true")
    urls = {"signal": signals.url, "pagefault": faults.url, "syscalls": calls.url}
    with made_cgroup() as (top_dir, top_path):
        group = top_dir / "lmp-top-test.service"
        group.mkdir()
        try:
            before = top.scrape(urls)
            for _ in range(3):
                run_in(group)
            after = top.scrape(urls)
            columns, found = top.rows(before, after, "lmp_signals_generated")
            assert {"lmp_signals_generated", "lmp_page_faults", "lmp_syscalls"} <= set(columns)
            row = found[0]  # sorted busiest first: nobody else sends that many signals here
            assert (row.cgroup, row.name, row.kind) == (f"{top_path}/lmp-top-test.service", "lmp-top-test.service",
                                                         "unit")
            seconds = after.at - before.at
            # every signal the cgroup sent: its SIGWINCHes, and the SIGCHLD each workload's exit sends its parent
            assert round(row.rates["lmp_signals_generated"] * seconds) == 3 * (SENDS + 1)
            assert row.rates["lmp_page_faults"] > 0
            # its syscalls: the kill of each SIGWINCH, and the shell's reads and writes around them
            assert round(row.rates["lmp_syscalls"] * seconds) >= 3 * SENDS
            text = top.render(columns, found, after.collector)
            assert text.splitlines()[1].startswith("lmp-top-test.service")
            busiest = max(row.rates, key=lambda c: row.rates[c])
            assert busiest in ("lmp_syscalls", "lmp_page_faults")  # a shell makes more of both than it signals
            board = {"lmp_syscalls": "syscalls", "lmp_page_faults": "pagefault"}[busiest]
            assert f"lmp-top-test.service: dashboard /d/lmp-{board}?var-cgroup={row.cgroup}" in text

            out = subprocess.run([*LMP, "top", "--once", "--interval", "0.5", "--url", f"signal={signals.url}",
                                  "--url", f"pagefault={faults.url}"], capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            assert out.stdout.startswith("NAME") and "signals_generated" in out.stdout.splitlines()[0]
        finally:
            group.rmdir()


def test_top_without_collectors_says_so(tmp_path):
    config = tmp_path / "lmp.yaml"
    config.write_text("disable_defaults: true\ncollectors: {}\n")
    out = subprocess.run([*LMP, "--config", str(config), "top", "--once"], capture_output=True, text=True)
    assert out.returncode == 2 and "no collector is enabled" in out.stderr, (out.stdout, out.stderr, sys.executable)
