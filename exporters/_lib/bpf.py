"""Loading a collector's precompiled CO-RE object (<name>.bpf.o) with libbpf: the hooks it requires, its
options written into .rodata, its maps sized, its programs loaded (or the verifier's reasons why not) and
attached through BPF links, and its maps read at scrape time."""
from __future__ import annotations

import ctypes
import mmap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import btf, libbpf
from .btf import Layout
from .decoders import cgroup2_root
from .spec import Spec

if TYPE_CHECKING:
    from .function.links import Link

TRACEFS = Path("/sys/kernel/tracing")
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
OVERFLOW_PREFIX = "lmp_overflow_"  # lmp.h's LMP_OVERFLOW_COUNTER(map): a .bss global per map
LOG_SIZE = 16 << 20  # as libbpf's own: room for the log of the largest program the kernel takes
LOG_LINES = 30  # the verifier log's last lines shown on a refused load: the error and what led to it
BATCH_BYTES = 64 << 10  # keys and values read per syscall: small buffers, whatever the map's values weigh
TRACING_SECTIONS = ("tp/", "tracepoint/", "raw_tp/", "raw_tracepoint/", "tp_btf/")


class LoadError(RuntimeError):
    """The collector cannot run on this host; the message says why and what to do."""


def btf_missing(btf_path: Path | None = None) -> str | None:
    """Why CO-RE relocations cannot be done here, or None: the kernel's BTF, or the file given instead."""
    if btf_path is not None:
        return None if btf_path.is_file() else f"no BTF file at {btf_path} (--btf)"
    if VMLINUX_BTF.exists():
        return None
    return (f"this kernel has no BTF (no {VMLINUX_BTF}: built without CONFIG_DEBUG_INFO_BTF); LMP's programs are "
            f"CO-RE and need a description of the kernel's types: give one with --btf PATH (btf_path in the config), "
            f"for instance this kernel's from BTFHub")


def missing_hooks(spec: Spec, tracefs: Path = TRACEFS) -> list[str]:
    """The hooks in `requires` that this kernel lacks (tracepoints as category:event)."""
    missing = []
    if spec.tracepoints:
        events = tracefs / "events"
        if not events.is_dir():
            raise LoadError(f"tracefs is not mounted at {tracefs}: mount -t tracefs tracefs {tracefs}")
        missing += [tp for tp in spec.tracepoints if not (events / tp.replace(":", "/")).is_dir()]
    if any(hook.startswith("cgroup/") for hook in spec.programs):
        try:
            cgroup2_root()
        except FileNotFoundError:
            missing += [f"{hook} (no cgroup v2 hierarchy is mounted)" for hook in spec.programs]
    return missing


def can_run(spec: Spec) -> tuple[bool, str]:
    """Whether this kernel has every hook the collector requires (and the BTF its CO-RE object needs), and
    if not, what is missing."""
    try:
        missing = missing_hooks(spec)
    except (LoadError, PermissionError) as err:
        return False, str(err)
    if missing:
        return False, "missing " + ", ".join(missing)
    why = btf_missing()
    return (why is None, why or "")


@dataclass
class Map:
    """One BPF map of a loaded object, its key and value layouts from the object's BTF. Per-CPU maps give
    a value per possible CPU, each padded to 8 bytes; `words` adds them up."""
    name: str
    fd: int
    type: int
    key: Layout
    value: Layout
    key_size: int
    value_size: int
    max_entries: int
    cpus: int

    @property
    def percpu(self) -> bool:
        return self.type in libbpf.PERCPU_TYPES

    @property
    def stride(self) -> int:
        """Bytes of one entry's value as lookups return it."""
        return (self.value_size + 7) // 8 * 8 * self.cpus if self.percpu else self.value_size

    def items(self) -> list[tuple[bytes, memoryview]]:
        """Every (key, value) pair: batch reads where the kernel has them (LPM tries do not)."""
        chunk = max(1, min(self.max_entries, BATCH_BYTES // (self.key_size + self.stride)))
        found = libbpf.lookup_batch(self.fd, self.key_size, self.stride, chunk)
        if found is None:
            pairs = []
            for key in libbpf.keys(self.fd, self.key_size):
                value = libbpf.lookup(self.fd, key, self.stride)
                if value is not None:
                    pairs.append((key, memoryview(value)))
            return pairs
        keys, values, n = found
        view = memoryview(values)
        return [(keys[i * self.key_size:(i + 1) * self.key_size], view[i * self.stride:(i + 1) * self.stride])
                for i in range(n)]

    def words(self, value: memoryview, start: int, width: int) -> list[int]:
        """u64 words [start, start + width) of a value, summed over CPUs for a per-CPU map."""
        numbers = value.cast("Q")
        if not self.percpu:
            return list(numbers[start:start + width])
        step = len(numbers) // self.cpus
        return [sum(numbers[start + j::step]) for j in range(width)]

    def lookup(self, key: bytes) -> bytes | None:
        return libbpf.lookup(self.fd, key, self.stride)

    def update(self, key: bytes, value: bytes) -> None:
        """Set a value (for a per-CPU map, every CPU's copy to it)."""
        if self.percpu:
            value = value.ljust((self.value_size + 7) // 8 * 8, b"\0") * self.cpus
        libbpf.update(self.fd, key, value)

    def delete(self, key: bytes) -> bool:
        return libbpf.delete(self.fd, key)

    def clear(self) -> None:
        for key in libbpf.keys(self.fd, self.key_size):
            libbpf.delete(self.fd, key)


def _tracepoint(section: str, required: tuple[str, ...]) -> str:
    """The tracepoint (category:event) a tracing program's section attaches to: tp/sched/sched_switch
    names it whole; raw_tp/ and tp_btf/ name the event, whose category the spec's list gives, or tracefs."""
    kind, _, rest = section.partition("/")
    if kind in ("tp", "tracepoint"):
        return rest.replace("/", ":")
    found = next((tp for tp in required if tp.split(":")[1] == rest), None)
    if found is None:
        found = next((f"{d.parent.name}:{rest}" for d in (TRACEFS / "events").glob(f"*/{rest}")), rest)
    return found


@dataclass
class Loaded:
    spec: Spec
    obj: int  # libbpf's struct bpf_object
    maps: dict[str, Map]
    overflow_fields: dict[str, btf.Field]  # map name -> its lmp_overflow_ counter in .bss
    bss: Map | None
    types: btf.Types
    seconds: float  # open + load + attach
    hooks: dict[str, int] = field(default_factory=dict)  # tracepoint -> its link (libbpf struct bpf_link)
    programs: dict[str, int] = field(default_factory=dict)  # function components: hook -> program fd
    links: dict[str, Link] = field(default_factory=dict)  # "hook:target" -> its link, kept by the component
    # ifindex -> the name a component attached to ("veth0", or "NETNS/veth0" in another namespace, where
    # if_indextoname cannot look): what the `interface` label decoder shows
    interfaces: dict[int, str] = field(default_factory=dict)
    uprobes: dict[str, int] = field(default_factory=dict)  # uprobe programs by name, attached by uprobes.Watcher
    closed: bool = False

    def attached(self) -> dict[str, bool]:
        """Every required tracepoint and every hook a program is attached to: True where attached. A
        required hook no program attached to (a handler renamed, or an option's program left out) shows
        False. A function component's hooks are "hook:target", one per link, False once the kernel detached
        it."""
        hooks = {hook: hook in self.hooks for hook in sorted({*self.spec.tracepoints, *self.hooks})}
        return {**hooks, **{name: link.attached() for name, link in sorted(self.links.items())}}

    def overflow(self) -> dict[str, int]:
        """Events each map dropped because it was full (lmp.h's LMP_OVERFLOW)."""
        if self.bss is None or not self.overflow_fields:
            return {}
        raw = self.bss.lookup(bytes(4)) or b""
        return {name: f.get(raw) for name, f in self.overflow_fields.items()}

    def close(self) -> None:
        """Detach every program and free the maps."""
        if not self.closed:
            self.closed = True
            for link in self.links.values():
                link.close()
            for link_ptr in self.hooks.values():
                libbpf.destroy_link(link_ptr)
            libbpf.close(self.obj)


def _set_options(spec: Spec, obj: int, types: btf.Types, values: dict[str, bool | int]) -> None:
    """Options into the object's .rodata (its `const volatile` globals), before load: the verifier then
    sees them as constants and drops the code they turn off."""
    variables = types.section(".rodata")
    for name, opt in spec.options.items():
        if name not in variables and not (opt.programs or opt.sizes or opt.core):  # those need no global
            raise LoadError(f"{spec.name}: option {name} has no `const volatile` global of that name in "
                            f"{spec.source.name}")
    given = [name for name, opt in spec.options.items() if name in variables and not opt.core]
    if given:
        memory = libbpf.initial_value(libbpf.find_map(obj, ".rodata"))
        data = bytearray(memory.raw)
        for name in given:
            variables[name].put(data, int(values[name]))
        memory[:] = bytes(data)


def _prepare(spec: Spec, obj: int, values: dict[str, bool | int]) -> dict[str, int]:
    """Programs an option leaves out are not loaded; maps are sized by the options that size them, and
    the maps of metrics an option turns off hold one entry. Returns the programs by name."""
    programs = {libbpf.name(p): p for p in libbpf.programs(obj)}
    for opt in spec.options.values():
        for prog in opt.programs:
            if prog not in programs:
                raise LoadError(f"{spec.name}: option {opt.name} names program {prog}, which "
                                f"{spec.source.name} does not define")
            libbpf.set_autoload(programs[prog], bool(values[opt.name]))
    _, active = spec.active(values)
    sizes = {m: int(values[opt.name]) for opt in spec.options.values() for m in opt.sizes}
    for m in libbpf.maps(obj):
        map_name = libbpf.name(m, True)
        if map_name in sizes:
            libbpf.set_max_entries(m, sizes[map_name])
        elif map_name in spec.map_names and map_name not in active and libbpf.map_info(m)[4] > 1:
            libbpf.set_max_entries(m, 1)
    return programs


def _btf_programs_need_the_kernels(spec: Spec, programs: dict[str, int], btf_path: Path | None) -> None:
    """A BTF file given for a kernel without its own serves CO-RE relocations only: a tp_btf program is
    attached by the kernel's own type ids, which it cannot know without /sys/kernel/btf/vmlinux."""
    if btf_path is None or VMLINUX_BTF.exists():
        return
    typed = [name for name, prog in programs.items() if libbpf.autoload(prog) and libbpf.section(prog).startswith("tp_btf/")]
    if typed:
        raise LoadError(f"{spec.name}: its tp_btf programs ({', '.join(typed)}) attach by the kernel's own BTF "
                        f"type ids, and this kernel has no {VMLINUX_BTF}: --btf serves the collectors on classic "
                        f"tracepoints only (fileio)")


def _refused(spec: Spec, messages: list[str], log: bytes) -> LoadError:
    """The kernel's (or libbpf's) reason for refusing the object, trimmed to what a reader needs: libbpf's
    own words, then the verifier log's last lines, where it says what was wrong and at which line of the
    source (each instruction is preceded by its `; source line @ file:line`)."""
    said = [line.strip() for text in messages for line in text.splitlines() if line.strip()]
    text = log.split(b"\0", 1)[0].decode(errors="replace").rstrip().splitlines()
    parts = [f"the kernel refused {spec.object.name}:", *[f"  {line}" for line in said[-8:]]]
    if text:
        cut = max(0, len(text) - LOG_LINES)
        parts.append(f"  the verifier's log{f' (its last {LOG_LINES} of {len(text)} lines)' if cut else ''}:")
        parts += [f"    {line}" for line in text[cut:]]
    return LoadError("\n".join(parts))


def load(spec: Spec, values: dict[str, bool | int], btf_path: Path | None = None) -> Loaded:
    """Open <name>.bpf.o, set its options and map sizes, load it and attach its tracing programs (a
    function component's programs are attached later, by its policy). LoadError says why it cannot."""
    started = time.monotonic()
    path = spec.object
    if (why := btf_missing(btf_path)) is not None:
        raise LoadError(f"{spec.name}: {why}")
    if not path.is_file():
        raise LoadError(f"{spec.name}: no {path}: build it with `lmp build` (needs clang)")
    log = mmap.mmap(-1, LOG_SIZE)  # the verifier's log, if it refuses: pages are used only when written
    log_view = ctypes.c_char.from_buffer(log)
    obj = 0
    try:
        with libbpf.Messages() as messages:
            try:
                obj = libbpf.open_file(path, btf_path, ctypes.addressof(log_view), LOG_SIZE)
                types = btf.Types(libbpf.btf(obj))
                _set_options(spec, obj, types, values)
                programs = _prepare(spec, obj, values)
                _btf_programs_need_the_kernels(spec, programs, btf_path)
                libbpf.load(obj)
            except OSError as err:
                if obj:
                    libbpf.close(obj)
                error = _refused(spec, [*messages, str(err)], log[:])
                raise error from None
            except LoadError:  # the spec and the object disagree, or a program cannot run here
                libbpf.close(obj)
                raise
        loaded = Loaded(spec, obj, _maps(obj, types), {}, None, types, 0.0)
        bss_fields = types.section(".bss")
        loaded.overflow_fields = {n.removeprefix(OVERFLOW_PREFIX): f for n, f in bss_fields.items()
                                  if n.startswith(OVERFLOW_PREFIX)}
        loaded.bss = _data_map(obj, ".bss", types)
        try:
            _attach(spec, loaded, programs)
        except (OSError, LoadError) as err:
            loaded.close()
            raise LoadError(f"{spec.name}: {err}") from None
        loaded.seconds = time.monotonic() - started
        return loaded
    finally:
        del log_view
        log.close()


def _maps(obj: int, types: btf.Types) -> dict[str, Map]:
    found = {}
    cpus = libbpf.possible_cpus()
    for m in libbpf.maps(obj):
        map_name = libbpf.name(m, True)
        if "." in map_name:  # global data: .rodata, .bss, .data
            continue
        fd, kind, key_size, value_size, entries, key_id, value_id = libbpf.map_info(m)
        key = types.layout(key_id) if key_id else Layout("", key_size, {})
        value = types.layout(value_id) if value_id else Layout("", value_size, {})
        found[map_name] = Map(map_name, fd, kind, key, value, key_size, value_size, entries, cpus)
    return found


def _data_map(obj: int, section: str, types: btf.Types) -> Map | None:
    m = libbpf.find_map(obj, section)
    if m is None:
        return None
    fd, kind, key_size, value_size, entries, _, _ = libbpf.map_info(m)
    return Map(section, fd, kind, Layout("", key_size, {}), Layout(section, value_size, {}), key_size,
               value_size, entries, 1)


def _attach(spec: Spec, loaded: Loaded, programs: dict[str, int]) -> None:
    """Tracing programs through links, by their sections; a function component's programs wait for their
    targets (their fds are kept by hook)."""
    functions = {function: hook for hook, function in spec.programs.items()}
    for name, prog in programs.items():
        if not libbpf.autoload(prog):
            continue
        if name in functions:
            loaded.programs[functions[name]] = libbpf.program_fd(prog)
            continue
        section = libbpf.section(prog)
        if section in ("uprobe", "uretprobe"):  # no target yet: attached to each library file found mapped
            loaded.uprobes[name] = prog
            continue
        if not section.startswith(TRACING_SECTIONS):
            raise LoadError(f"program {name} is in section {section!r}; collectors attach tp/, raw_tp/ and tp_btf/ "
                            f"programs, function components the ones their spec names under requires")
        loaded.hooks[_tracepoint(section, spec.tracepoints)] = libbpf.attach(prog)


def programs_held_by(pid: int) -> set[int]:
    """The ids of the BPF programs a process holds open (prog_id in its file descriptors' fdinfo)."""
    ids = set()
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            ids.update(int(line.split()[1]) for line in info.read_text().splitlines() if line.startswith("prog_id:"))
        except OSError:  # closed meanwhile
            continue
    return ids
