"""Building kernel code once, ahead of time: each <name>.bpf.c into <name>.bpf.o, beside it.

`lmp build` (which `make run` and `make test` run through the install step) checks each collector's spec
and compiles its .bpf.c with clang when the object is missing or older than anything it was made from:
the .bpf.c, every header it included (clang's dependency file, <name>.bpf.d, lists them) and the spec.
A second run with nothing changed builds nothing. A running exporter then loads the object as it is: no
compiler, no kernel headers and no spec validator on the host that runs it."""
from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

from .paths import LIB_DIR

ARCHES = {"x86_64": "x86", "aarch64": "arm64"}  # uname -m -> libbpf's __TARGET_ARCH_ (bpf_tracing.h)


class BuildError(RuntimeError):
    """A collector that cannot be built; the message holds clang's own (file:line: error)."""


def vmlinux_dir(machine: str = platform.machine()) -> Path:
    """Where this architecture's vmlinux.h is: every kernel type, dumped once from a kernel's BTF
    (`bpftool btf dump file /sys/kernel/btf/vmlinux format c`) and committed, so that every build host
    makes the same object. CO-RE relocates its field offsets to the running kernel's at load time."""
    return LIB_DIR / "arch" / machine


def clang_command(source: Path, output: Path, depfile: Path) -> list[str]:
    machine = platform.machine()
    if machine not in ARCHES:
        raise BuildError(f"LMP builds for {', '.join(ARCHES)}, not {machine}")
    if not (vmlinux_dir() / "vmlinux.h").is_file():
        raise BuildError(f"no {vmlinux_dir() / 'vmlinux.h'}: make it on a {machine} host with "
                         f"`bpftool btf dump file /sys/kernel/btf/vmlinux format c`")
    # -g: BTF, which CO-RE relocations and the verifier's source-line log need; -mcpu=v3: 32-bit jumps and
    # ALU (Linux 5.1), shorter programs.
    return ["clang", "-g", "-O2", "-target", "bpf", "-mcpu=v3", f"-D__TARGET_ARCH_{ARCHES[machine]}",
            f"-I{LIB_DIR}", f"-I{vmlinux_dir()}", "-Wall", "-MD", "-MF", str(depfile),
            "-c", str(source), "-o", str(output)]


def inputs(source: Path) -> list[Path]:
    """What an object is made from: its .bpf.c, the spec beside it (a collector's) and, after a first build,
    every header clang read (from the dependency file clang wrote, in make's syntax)."""
    found = [source, source.with_name(source.name.removesuffix(".bpf.c") + ".yaml")]
    try:
        text = source.with_suffix(".d").read_text().replace("\\\n", " ")
    except OSError:
        return found
    _, _, deps = text.partition(":")
    return found + [Path(d) for d in deps.split()]


def stale(source: Path) -> bool:
    """True when source's object (<name>.bpf.o beside it) is missing or older than one of its inputs."""
    try:
        built = source.with_suffix(".o").stat().st_mtime_ns
    except OSError:
        return True
    for path in inputs(source):
        try:
            if path.stat().st_mtime_ns > built:
                return True
        except OSError:
            if path.suffix != ".yaml":  # a header that went away: rebuild, and let clang say what is missing
                return True
    return False


def build(source: Path) -> str:
    """Compile source (<name>.bpf.c) into <name>.bpf.o beside it, written whole or not at all; returns
    clang's warnings, or raises BuildError with its messages. A collector's spec must have been checked
    first (spec.load(path))."""
    if shutil.which("clang") is None:
        raise BuildError(f"clang is needed to build {source} (apt-get install clang llvm libbpf-dev; "
                         f"scripts/install.sh does)")
    output = source.with_suffix(".o")
    partial = output.with_suffix(".o.tmp")
    result = subprocess.run(clang_command(source, partial, source.with_suffix(".d")), capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(f"clang could not compile {source}:\n{result.stderr.rstrip()}")
    if shutil.which("llvm-strip"):  # DWARF is not needed once BTF is there: 600 KB become 10-20 KB
        subprocess.run(["llvm-strip", "-g", str(partial)], check=True, capture_output=True)
    partial.replace(output)
    return result.stderr.rstrip()
