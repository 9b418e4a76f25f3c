"""`lmp scenario compare`: a buffered and an O_DIRECT dd write the same bytes to the same disk, and take
different paths through the kernel: the direct one issues its block writes itself and waits for them in
D state, the buffered one leaves dirty pages for the kernel's flusher. The comparison must show it.

How many times the direct dd goes off the CPU in D state is not one per write on this machine: the
virtual disk often completes a write while the guest is still in its notification (`iowrite16` in
the on-CPU samples), before dd gets to sleep on it. For 32 writes of 1 MiB the kernel's own
sched_switch showed 7 to 32 such waits in 20 runs (4 KiB writes: 1 to 68 for 64). So the count is
checked against the kernel's, taken by an ftrace instance during the same run."""
from __future__ import annotations

import json
import subprocess

from tests.conftest import LMP
from tests.ftrace import D_STATE, switches_out
from tests.scenario.conftest import scenario

BLOCKS = 32
def test_buffered_and_direct_writes_differ_where_the_kernel_does(disk_folder, tmp_path):
    runs = {}
    with switches_out(D_STATE) as kernel:
        for name, flags in (("buffered", []), ("direct", ["oflag=direct"])):
            target = disk_folder / f"{name}.out"
            run = scenario(tmp_path / name, "run", "--", "dd", "if=/dev/zero", f"of={target}", "bs=1M",
                           f"count={BLOCKS}", "status=none", *flags)
            assert run.proc.returncode == 0, run.proc.stderr
            runs[name] = run
    kernel_a, kernel_b = (kernel[runs[name].json("run.json")["pid"], "D"] for name in ("buffered", "direct"))
    assert runs["buffered"].syscall("write")["count"] == runs["direct"].syscall("write")["count"] == BLOCKS

    out = tmp_path / "compare"
    result = subprocess.run([*LMP, "scenario", "compare", str(tmp_path / "buffered"), str(tmp_path / "direct"),
                             "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    c = json.loads((out / "compare.json").read_text())
    writes = c["counts"]["block writes issued by it"]
    assert writes["a"] == 0 and writes["b"] >= BLOCKS  # synchronous in one, not at all in the other
    waits = c["counts"]["off-CPU waits, uninterruptible"]
    assert (waits["a"], waits["b"]) == (kernel_a, kernel_b)
    assert kernel_b > kernel_a  # the direct one waits for the disk at least once, the other does not
    assert c["parts"]["uninterruptible"]["delta"] > 0
    assert "block writes issued by it" in result.stdout and "B - A" in result.stdout

    # The differential flame graph: direct-I/O waits are stacks of B only.
    rows = [line.rsplit(" ", 2) for line in (out / "offcpu.diff.folded").read_text().splitlines()]
    only_b = [(s, int(a), int(b)) for s, a, b in rows if int(a) == 0 and int(b) > 0 and "[uninterruptible]" in s]
    assert any("dio" in s for s, _, _ in only_b), only_b[:5]
    # ftrace's own probe on sched_switch, beside the recorder's, has the kernel call them through
    # __traceiter_sched_switch: a frame of the tracing, never shown as where a thread waited.
    assert not [s for s, _, _ in rows if "__traceiter_" in s or "__bpf_trace_" in s], rows[:3]
    assert (out / "compare.html").read_text().count('"kind":"compare"') == 1
    bad = subprocess.run([*LMP, "scenario", "compare", str(tmp_path / "buffered"), str(tmp_path / "nothing")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not the output directory" in bad.stderr
