"""`lmp build`: a collector's kernel code compiled once into its object, again only when something it is
made from changed, and a failure that names the file, the line and clang's reason."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from exporters._lib import build, catalog
from tests.conftest import run_lmp


def copy_collector(tmp_path: Path, src: str = "syscalls", name: str = "mine") -> Path:
    """exporters/<src> as a collector `name` of tmp_path, its code including a header of its own."""
    folder = tmp_path / name
    folder.mkdir()
    code = (catalog.EXPORTERS_DIR / src / f"{src}.bpf.c").read_text()
    (folder / "limits.h").write_text("#define MAX_SYSCALLS 1024\n")
    (folder / f"{name}.bpf.c").write_text(code.replace("#define MAX_SYSCALLS 1024", '#include "limits.h"'))
    (folder / f"{name}.yaml").write_text((catalog.EXPORTERS_DIR / src / f"{src}.yaml").read_text()
                                         .replace(f"name: {src}", f"name: {name}"))
    return folder


def lmp_build(tmp_path: Path, name: str = "mine") -> tuple[int, str]:
    result = run_lmp("build", name, "--collector-dir", str(tmp_path), timeout=120)
    return result.returncode, result.stderr


def only_newer(folder: Path, newer: str) -> None:
    """Every file of the folder 100 s old, but `newer`, 50 s old: newer than the object and only it (file
    times can be coarser than this test is quick)."""
    now = time.time()
    for path in folder.iterdir():
        stamp = now - (50 if path.name == newer else 100)
        os.utime(path, (stamp, stamp))


def test_built_once_then_only_when_an_input_changed(tmp_path):
    folder = copy_collector(tmp_path)
    obj = folder / "mine.bpf.o"
    assert lmp_build(tmp_path) == (0, f"lmp build: {obj}\n")
    assert obj.stat().st_size < 64 * 1024  # BTF kept, DWARF stripped
    built = obj.stat().st_mtime_ns
    assert lmp_build(tmp_path) == (0, "")  # nothing changed: nothing built, nothing said
    assert obj.stat().st_mtime_ns == built
    for source in ("limits.h", "mine.bpf.c", "mine.yaml"):  # a header it included (clang's list), its code, its spec
        only_newer(folder, source)
        assert build.stale(folder / "mine.bpf.c")
        assert lmp_build(tmp_path) == (0, f"lmp build: {obj}\n"), source
        assert not build.stale(folder / "mine.bpf.c")


def test_a_compile_error_names_file_line_and_reason_and_keeps_the_last_object(tmp_path):
    folder = copy_collector(tmp_path)
    assert lmp_build(tmp_path)[0] == 0
    good = (folder / "mine.bpf.o").read_bytes()
    code = (folder / "mine.bpf.c").read_text()
    line = code.splitlines().index("    u32 nr = id;") + 1
    (folder / "mine.bpf.c").write_text(code.replace("    u32 nr = id;", "    u32 nr = id"))  # a missing ;
    only_newer(folder, "mine.bpf.c")
    code_, stderr = lmp_build(tmp_path)
    assert code_ == 1
    assert f"mine.bpf.c:{line}:" in stderr and "error: expected ';'" in stderr
    assert (folder / "mine.bpf.o").read_bytes() == good  # written whole or not at all
    assert not list(folder.glob("*.tmp"))


def test_a_bad_spec_is_refused_before_compiling(tmp_path):
    folder = copy_collector(tmp_path)
    spec = (folder / "mine.yaml").read_text().replace("type: counter", "type: countr", 1)
    (folder / "mine.yaml").write_text(spec)
    code, stderr = lmp_build(tmp_path)
    line = spec.splitlines().index("    type: countr") + 1
    assert code == 2 and f"mine.yaml:{line}:" in stderr and "'countr' is not one of" in stderr
    assert not (folder / "mine.bpf.o").exists()


def test_without_clang_the_build_says_what_to_install(tmp_path, monkeypatch):
    folder = copy_collector(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    try:
        build.build(folder / "mine.bpf.c")
    except build.BuildError as err:
        assert "clang is needed" in str(err) and "apt-get install clang llvm libbpf-dev" in str(err)
    else:
        raise AssertionError("built without clang")
