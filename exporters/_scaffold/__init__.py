"""`lmp collector new EVENT`: a new collector folder around one tracepoint, laid out like the ones in
exporters/ (kernel code, spec, README) with a test that checks its count against the kernel's own. It
is where to start once a scenario has pointed at the kernel event worth a closer look."""
from __future__ import annotations

import re
from pathlib import Path
from string import Template

from exporters._lib import build, catalog, decoders
from exporters._lib.bpf import TRACEFS
from exporters._lib.paths import SCAFFOLD_DIR

TEMPLATES = SCAFFOLD_DIR / "templates"
SYSCALL_CALLS = 37  # how many times the workload of a syscall tracepoint makes its syscall
GENERIC_WORKLOAD = """import os, signal, socket, tempfile, time
with tempfile.NamedTemporaryFile(dir=os.getcwd()) as f:  # file I/O on the disk the test runs from
    for _ in range(5):
        f.write(b"x" * 4096)
        f.flush()
        os.fsync(f.fileno())
    f.seek(0)
    f.read()
for _ in range(3):
    time.sleep(0.01)
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
signal.signal(signal.SIGUSR1, lambda *_: None)
os.kill(os.getpid(), signal.SIGUSR1)
with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with socket.create_connection(server.getsockname()):
        server.accept()[0].close()
"""


class ScaffoldError(ValueError):
    pass


def fields(event: str) -> list[tuple[str, str]]:
    """(declaration, name) of the tracepoint's own fields, from its format file."""
    fmt = TRACEFS / "events" / event.replace(":", "/") / "format"
    try:
        text = fmt.read_text()
    except FileNotFoundError:
        raise ScaffoldError(f"this kernel has no tracepoint {event} (see {TRACEFS}/events)") from None
    found = []
    for decl in re.findall(r"field:([^;]+);", text):
        name = re.sub(r"\[.*\]", "", decl).split()[-1]
        if not name.startswith("common_"):
            found.append((decl.strip(), name))
    return found


def record_struct(category: str, name: str, names: list[str]) -> str:
    """The C type of the tracepoint's record in vmlinux.h: `struct trace_event_raw_<class>`. Syscall events
    share syscall_trace_enter and _exit. Other classes are often named after their event; when not (tracefs
    does not say the class), the record whose members are the format's fields, in order, is the same
    layout. `void` when vmlinux.h has none."""
    if category == "syscalls":
        return "struct syscall_trace_enter" if name.startswith("sys_enter_") else "struct syscall_trace_exit"
    try:
        header = (build.vmlinux_dir() / "vmlinux.h").read_text()
    except OSError:
        return "void"
    records = {m.group(1): re.findall(r"(\w+)(?:\[[^\]]*\])?;$", m.group(2), re.M)
               for m in re.finditer(r"^struct (trace_event_raw_\w+) \{\n(.*?)^\};", header, re.M | re.S)}
    wanted = ["ent", *names, "__data"]
    if f"trace_event_raw_{name}" in records:
        return f"struct trace_event_raw_{name}"
    same = [record for record, members in records.items() if members == wanted]
    return f"struct {same[0]}" if same else "void"


def workload(category: str, name: str) -> tuple[str, str]:
    """The generated test's workload, and how its README says it."""
    syscall = re.fullmatch(r"sys_(?:enter|exit)_(\w+)", name) if category == "syscalls" else None
    numbers = {n: nr for nr, n in decoders.syscall_names().items()}
    if syscall and syscall.group(1) in numbers:
        nr = numbers[syscall.group(1)]
        code = (f"import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nfor _ in range({SYSCALL_CALLS}):\n"
                f"    libc.syscall({nr})  # {syscall.group(1)}\n")
        return code, f"{SYSCALL_CALLS} `{syscall.group(1)}` system calls (number {nr})."
    return GENERIC_WORKLOAD, ("a bit of everything: file writes with fsync, sleeps, a fork, a signal, a loopback "
                              "TCP connection.")


def free_port(directory: Path) -> int:
    """The port after the highest any collector here (exporters/ and `directory`) takes."""
    return 1 + max((catalog.load(n, [directory], check=False).port for n in catalog.names([directory])), default=9450)


def scaffold(event: str, name: str | None, directory: Path) -> Path:
    if not re.fullmatch(r"[a-z0-9_]+:[a-z0-9_]+", event):
        raise ScaffoldError(f"{event!r} is not a tracepoint name CATEGORY:EVENT, e.g. block:block_rq_issue")
    category, event_name = event.split(":")
    args = fields(event)
    name = name or re.sub(r"[^a-z0-9]", "", event_name)[:32]
    if not re.fullmatch(r"[a-z][a-z0-9]*", name):
        raise ScaffoldError(f"collector name {name!r}: lowercase letters and digits, starting with a letter")
    folder = directory / name
    if folder.exists():
        raise ScaffoldError(f"{folder} exists; choose another --name or --dir")
    snake = re.sub(r"[^a-z0-9]+", "_", event_name).strip("_")
    code, doc = workload(category, event_name)
    values = {
        "name": name, "event": event, "port": free_port(directory), "category": category, "event_name": event_name,
        "metric": f"lmp_{snake}_events_total", "map": f"{snake}_events_total",
        "format": f"{TRACEFS}/events/{category}/{event_name}/format",
        "fields": "\n".join(f" *   {decl}" for decl, _ in args) or " *   (none)",
        # vmlinux.h names a syscall's number and arguments nr and args[6], not as in its format
        "first_field": "nr" if category == "syscalls" else args[0][1] if args else "FIELD", "workload": code, "workload_doc": doc,
        "record": record_struct(category, event_name, [
            f"__data_loc_{n}" if decl.startswith("__data_loc") else n for decl, n in args]), "program": snake,
    }
    folder.mkdir(parents=True)
    for template, target in (("collector.bpf.c.in", f"{name}.bpf.c"), ("collector.yaml.in", f"{name}.yaml"),
                             ("README.md.in", "README.md"), ("test_collector.py.in", f"test_{name}.py")):
        (folder / target).write_text(Template((TEMPLATES / template).read_text()).substitute(values))
    return folder
