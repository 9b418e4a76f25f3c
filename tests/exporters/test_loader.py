"""Loading the collectors' precompiled CO-RE objects: what an exporter process maps (no compiler, no BCC,
no validator), what it says when the verifier refuses a program, and what it says on a kernel without BTF."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from exporters._lib import catalog
from tests.conftest import LMP, bpf_program_ids, free_port, free_ports, programs_left, run_lmp
from tests.lmprun import Run, descendants

# Shared objects whose presence in an exporter's address space would mean what it must not carry: the
# compiler (LLVM, clang, BCC), the spec and config validator (jsonschema's rpds), the admin's web stack
# (MarkupSafe's speedups, SQLAlchemy's extensions).
FORBIDDEN = ("libLLVM", "libclang", "libbcc", "rpds", "markupsafe", "sqlalchemy", "greenlet")


def mapped(pid: int) -> set[str]:
    return {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if "/" in line}


def carries(pid: int) -> list[str]:
    return sorted(path for path in mapped(pid) if any(name in path for name in FORBIDDEN))


def test_an_exporter_on_its_own_maps_libbpf_and_nothing_it_must_not_carry(exporter):
    e = exporter("syscalls", "-o", "latency=true")
    assert any("libbpf.so.1" in path for path in mapped(e.proc.pid))
    assert carries(e.proc.pid) == []


def test_exporters_under_lmp_run_carry_none_either(tmp_path):
    ports = free_ports(("syscalls", "runqlat", "admin"))
    config = tmp_path / "lmp.yaml"
    config.write_text(f"disable_defaults: true\nprometheus: {{enabled: false}}\nadmin: {{listen: '127.0.0.1:{ports['admin']}', "
                      f"data_dir: '{tmp_path / 'data'}', run_dir: '{tmp_path / 'run'}'}}\ncollectors:\n" +
                      "".join(f"  {n}: {{enabled: true, listen: '127.0.0.1:{ports[n]}'}}\n" for n in ("syscalls", "runqlat")))
    run = Run(config)
    try:
        run.wait_for_line("LMP is running")
        names = {Path(f"/proc/{pid}/comm").read_text().strip(): pid for pid in descendants(run.proc.pid)}
        for name in ("lmp-syscalls", "lmp-runqlat", "lmp-spawner" if "lmp-spawner" in names else "lmp-run"):
            assert carries(names[name]) == [], name
        assert any("sqlalchemy" in p or "markupsafe" in p for p in mapped(names["lmp-admin"]))  # the check sees them
    finally:
        output = run.ctrl_c()
    assert run.proc.returncode == 0, output


def test_a_program_the_verifier_refuses_is_shown_with_its_reasons_and_source_line(tmp_path):
    """A classic mistake, a map value used without checking the lookup found one: the exporter exits 1,
    having attached nothing, with libbpf's words and the verifier's last lines, the source line among them."""
    folder = tmp_path / "careless"
    folder.mkdir()
    code = (catalog.EXPORTERS_DIR / "syscalls" / "syscalls.bpf.c").read_text()
    careless = code.replace("        if (calls)\n            (*calls)++;\n        else", "        (*calls)++;\n        if (!calls)")
    assert careless != code
    (folder / "careless.bpf.c").write_text(careless)
    (folder / "careless.yaml").write_text((catalog.EXPORTERS_DIR / "syscalls" / "syscalls.yaml").read_text()
                                          .replace("name: syscalls", "name: careless"))
    before = bpf_program_ids()
    result = run_lmp("exporter", "careless", "--collector-dir", str(tmp_path), "--listen", f"127.0.0.1:{free_port()}",
                     timeout=120)
    assert result.returncode == 1, result.stderr
    err = result.stderr
    assert "lmp exporter careless: the kernel refused careless.bpf.o:" in err  # the name said once
    assert "libbpf: prog 'sys_exit': BPF program load failed: Permission denied" in err
    assert "the verifier's log" in err and "invalid mem access 'map_value_or_null'" in err
    line = careless.splitlines().index("        (*calls)++;") + 1
    assert f"; (*calls)++; @ careless.bpf.c:{line}" in err  # where, in the reader's own file
    assert len(err.splitlines()) < 50  # trimmed to what a reader needs
    assert not programs_left(bpf_program_ids() - before)


def without_btf(tmp_path: Path, script: str) -> subprocess.CompletedProcess:
    """A shell script in a mount namespace where /sys/kernel/btf is an empty tmpfs: LMP sees a kernel
    without BTF (the kernel itself still has it); $BTF is a copy of the kernel's BTF to give with --btf."""
    copy = tmp_path / "vmlinux.btf"
    shutil.copy("/sys/kernel/btf/vmlinux", copy)
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                           f"mount -t tmpfs none /sys/kernel/btf && {script}"],
                          capture_output=True, text=True, timeout=180, env={**os.environ, "BTF": str(copy)},
                          cwd=tmp_path)


def test_a_kernel_without_btf_is_said_in_one_line_and_a_btf_file_can_be_given(tmp_path):
    lmp = " ".join(LMP)
    port = free_port()
    result = without_btf(tmp_path, f"""
        {lmp} list --json > list.json.out
        {lmp} exporter syscalls --listen 127.0.0.1:{port}; echo "syscalls exit $?"
        {lmp} exporter syscalls --listen 127.0.0.1:{port} --btf $BTF; echo "syscalls with --btf exit $?"
        {lmp} exporter fileio --listen 127.0.0.1:{port} --btf $BTF & pid=$!
        for i in $(seq 100); do curl -sf 127.0.0.1:{port}/metrics > metrics.out && break; sleep 0.1; done
        kill $pid; wait $pid; echo "fileio exit $?"
        {lmp} doctor --json > doctor.json.out""")
    out = result.stdout + result.stderr
    assert "syscalls exit 3" in out
    assert out.count("this kernel has no BTF (no /sys/kernel/btf/vmlinux") == 1  # one line, saying where to give one
    assert "give one with --btf PATH" in out
    assert "syscalls with --btf exit 1" in out and "its tp_btf programs (sys_exit) attach by the kernel's own BTF" in out
    assert "fileio exit 0" in out  # CO-RE relocations from the file given: classic tracepoints run
    assert "lmp_file_io_calls_total{op=" in (tmp_path / "metrics.out").read_text()
    assert all("no BTF" in row["why_not"] for row in json.loads((tmp_path / "list.json.out").read_text()))
    btf = next(c for c in json.loads((tmp_path / "doctor.json.out").read_text())["checks"] if c["name"] == "BTF")
    assert btf["ok"] is False and "--btf PATH" in btf["advice"]
