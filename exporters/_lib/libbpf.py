"""A thin typed layer over libbpf (Debian's libbpf1), through ctypes: open a precompiled CO-RE object, set
its read-only data and map sizes, load it, attach its programs through BPF links, and read its maps.

Only what LMP uses is bound; each function keeps libbpf's name and meaning (see libbpf's src/libbpf.h).
libbpf 1.x returns NULL or a negative error and sets errno; both become OSError here. Its messages (the
verifier's log among them) are caught through libbpf_set_print, so that a failed load can say why."""
from __future__ import annotations

import ctypes
import os
import threading
from ctypes import POINTER, c_bool, c_char_p, c_int, c_size_t, c_uint32, c_void_p
from pathlib import Path

_lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
_libc = ctypes.CDLL(None, use_errno=True)

# enum bpf_map_type values LMP reads differently (include/uapi/linux/bpf.h).
MAP_HASH, MAP_ARRAY, MAP_PERCPU_HASH, MAP_PERCPU_ARRAY = 1, 2, 5, 6
MAP_LRU_HASH, MAP_LRU_PERCPU_HASH, MAP_LPM_TRIE, MAP_RINGBUF = 9, 10, 11, 27
PERCPU_TYPES = {MAP_PERCPU_HASH, MAP_PERCPU_ARRAY, MAP_LRU_PERCPU_HASH}
HASH_TYPES = {MAP_HASH, MAP_PERCPU_HASH, MAP_LRU_HASH, MAP_LRU_PERCPU_HASH}  # maps that fill up
BPF_ANY, BPF_NOEXIST = 0, 1


class OpenOpts(ctypes.Structure):
    """struct bpf_object_open_opts of libbpf 1.1 (fields up to kernel_log_level)."""
    _fields_ = [("sz", c_size_t), ("object_name", c_char_p), ("relaxed_maps", c_bool), ("pin_root_path", c_char_p),
                ("_attach_prog_fd", c_uint32), ("kconfig", c_char_p), ("btf_custom_path", c_char_p),
                ("kernel_log_buf", c_void_p), ("kernel_log_size", c_size_t), ("kernel_log_level", c_uint32)]


class UprobeOpts(ctypes.Structure):
    """struct bpf_uprobe_opts of libbpf 1.1."""
    _fields_ = [("sz", c_size_t), ("ref_ctr_offset", c_size_t), ("bpf_cookie", ctypes.c_uint64),
                ("retprobe", c_bool), ("func_name", c_char_p)]


class BatchOpts(ctypes.Structure):
    _fields_ = [("sz", c_size_t), ("elem_flags", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


def _bind(name: str, restype: object, *argtypes: object) -> None:
    fn = getattr(_lib, name)
    fn.restype, fn.argtypes = restype, list(argtypes)


for _name, _res, _args in [
    ("bpf_object__open_file", c_void_p, (c_char_p, POINTER(OpenOpts))),
    ("bpf_object__load", c_int, (c_void_p,)),
    ("bpf_object__close", None, (c_void_p,)),
    ("bpf_object__btf", c_void_p, (c_void_p,)),
    ("bpf_object__next_program", c_void_p, (c_void_p, c_void_p)),
    ("bpf_object__next_map", c_void_p, (c_void_p, c_void_p)),
    ("bpf_object__find_map_by_name", c_void_p, (c_void_p, c_char_p)),
    ("bpf_program__name", c_char_p, (c_void_p,)),
    ("bpf_program__section_name", c_char_p, (c_void_p,)),
    ("bpf_program__set_autoload", c_int, (c_void_p, c_bool)),
    ("bpf_program__autoload", c_bool, (c_void_p,)),
    ("bpf_program__fd", c_int, (c_void_p,)),
    ("bpf_program__attach", c_void_p, (c_void_p,)),
    ("bpf_program__attach_tracepoint", c_void_p, (c_void_p, c_char_p, c_char_p)),
    ("bpf_program__attach_raw_tracepoint", c_void_p, (c_void_p, c_char_p)),
    ("bpf_program__attach_uprobe_opts", c_void_p, (c_void_p, c_int, c_char_p, c_size_t, POINTER(UprobeOpts))),
    ("bpf_program__attach_perf_event", c_void_p, (c_void_p, c_int)),
    ("bpf_program__set_attach_target", c_int, (c_void_p, c_int, c_char_p)),
    ("libbpf_probe_bpf_map_type", c_int, (c_int, c_void_p)),
    ("bpf_link__destroy", c_int, (c_void_p,)),
    ("bpf_link__fd", c_int, (c_void_p,)),
    ("bpf_map__name", c_char_p, (c_void_p,)),
    ("bpf_map__fd", c_int, (c_void_p,)),
    ("bpf_map__type", c_int, (c_void_p,)),
    ("bpf_map__key_size", c_uint32, (c_void_p,)),
    ("bpf_map__value_size", c_uint32, (c_void_p,)),
    ("bpf_map__max_entries", c_uint32, (c_void_p,)),
    ("bpf_map__set_max_entries", c_int, (c_void_p, c_uint32)),
    ("bpf_map__btf_key_type_id", c_uint32, (c_void_p,)),
    ("bpf_map__btf_value_type_id", c_uint32, (c_void_p,)),
    ("bpf_map__initial_value", c_void_p, (c_void_p, POINTER(c_size_t))),
    ("bpf_map_lookup_elem", c_int, (c_int, c_void_p, c_void_p)),
    ("bpf_map_update_elem", c_int, (c_int, c_void_p, c_void_p, ctypes.c_uint64)),
    ("bpf_map_delete_elem", c_int, (c_int, c_void_p)),
    ("bpf_map_get_next_key", c_int, (c_int, c_void_p, c_void_p)),
    ("bpf_map_lookup_batch", c_int, (c_int, c_void_p, c_void_p, c_void_p, c_void_p, POINTER(c_uint32),
                                     POINTER(BatchOpts))),
    ("ring_buffer__new", c_void_p, (c_int, c_void_p, c_void_p, c_void_p)),
    ("ring_buffer__poll", c_int, (c_void_p, c_int)),
    ("ring_buffer__consume", c_int, (c_void_p,)),
    ("ring_buffer__free", None, (c_void_p,)),
    ("btf__parse", c_void_p, (c_char_p, c_void_p)),
    ("btf__type_by_id", c_void_p, (c_void_p, c_uint32)),
    ("btf__name_by_offset", c_char_p, (c_void_p, c_uint32)),
    ("btf__find_by_name_kind", ctypes.c_int32, (c_void_p, c_char_p, c_uint32)),
    ("libbpf_num_possible_cpus", c_int, ()),
    ("libbpf_version_string", c_char_p, ()),
    ("libbpf_set_print", c_void_p, (c_void_p,)),
]:
    _bind(_name, _res, *_args)
_libc.vsnprintf.restype, _libc.vsnprintf.argtypes = c_int, [c_char_p, c_size_t, c_char_p, c_void_p]

# A ring buffer's callback: int (*)(void *ctx, void *data, size_t size).
SampleFn = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)


def fail(what: str, code: int | None = None) -> OSError:
    """An OSError for a libbpf call that failed: the errno it set (or the negative code it returned)."""
    err = abs(code) if code else ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


# --- libbpf's messages --------------------------------------------------------------------------------
# libbpf_print_fn_t: int (*)(enum libbpf_print_level, const char *fmt, va_list). A va_list reaches a
# callback as a pointer (x86_64's is an array that decays to one, aarch64 passes its 32-byte struct by
# reference), which vsnprintf takes as it is.
_PrintFn = ctypes.CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
LIBBPF_WARN, LIBBPF_INFO = 0, 1
_messages = threading.local()


def _print(level: int, fmt: bytes, args: int) -> int:
    if level <= LIBBPF_INFO and getattr(_messages, "lines", None) is not None:
        buf = ctypes.create_string_buffer(4096)
        _libc.vsnprintf(buf, len(buf), fmt, args)
        _messages.lines.append(buf.value.decode(errors="replace"))
    return 0


_print_fn = _PrintFn(_print)  # kept referenced: libbpf holds a pointer to it
_lib.libbpf_set_print(ctypes.cast(_print_fn, c_void_p))


class Messages:
    """Collects what libbpf says on this thread inside the block (its warnings, the verifier's log)."""

    def __enter__(self) -> list[str]:
        _messages.lines = []
        return _messages.lines

    def __exit__(self, *exc: object) -> None:
        _messages.lines = None


def version() -> str:
    return _lib.libbpf_version_string().decode()


def possible_cpus() -> int:
    n = _lib.libbpf_num_possible_cpus()
    if n < 0:
        raise fail("libbpf_num_possible_cpus", n)
    return n


def open_file(path: Path, btf_path: Path | None = None, log_address: int = 0, log_size: int = 0) -> int:
    """bpf_object__open_file; btf_path replaces the kernel's BTF for CO-RE relocations (a host without
    /sys/kernel/btf/vmlinux). A load that fails is retried by libbpf with the verifier's log written at
    log_address (log_size bytes), which must stay valid until the load."""
    opts = OpenOpts(sz=ctypes.sizeof(OpenOpts), btf_custom_path=str(btf_path).encode() if btf_path else None,
                    kernel_log_buf=log_address or None,
                    kernel_log_size=log_size)
    obj = _lib.bpf_object__open_file(str(path).encode(), ctypes.byref(opts))
    if not obj:
        raise fail(f"cannot open {path}")
    return obj


def programs(obj: int) -> list[int]:
    found, prog = [], None
    while prog := _lib.bpf_object__next_program(obj, prog):
        found.append(prog)
    return found


def maps(obj: int) -> list[int]:
    found, m = [], None
    while m := _lib.bpf_object__next_map(obj, m):
        found.append(m)
    return found


def name(prog_or_map: int, is_map: bool = False) -> str:
    raw = _lib.bpf_map__name(prog_or_map) if is_map else _lib.bpf_program__name(prog_or_map)
    return raw.decode()


def section(prog: int) -> str:
    return _lib.bpf_program__section_name(prog).decode()


def set_autoload(prog: int, on: bool) -> None:
    if (code := _lib.bpf_program__set_autoload(prog, on)) < 0:
        raise fail("bpf_program__set_autoload", code)


def autoload(prog: int) -> bool:
    return bool(_lib.bpf_program__autoload(prog))


def program_fd(prog: int) -> int:
    return _lib.bpf_program__fd(prog)


def load(obj: int) -> None:
    code = _lib.bpf_object__load(obj)
    # For CO-RE, libbpf parsed the kernel's BTF (megabytes) and has freed it; glibc keeps freed heap for
    # reuse unless asked. Handing it back saves each exporter about 0.3 MB (lmp bench).
    _libc.malloc_trim(0)
    if code < 0:
        raise fail("bpf_object__load", code)


def attach(prog: int) -> int:
    """bpf_program__attach: attach by the program's section (tp/, raw_tp/, tp_btf/ ...); returns the link."""
    link = _lib.bpf_program__attach(prog)
    if not link:
        raise fail(f"cannot attach {section(prog)}")
    return link


def attach_to(prog: int, hook: str) -> int:
    """Attach a program whose section names no target (the benchmark's, the doctor's) to `hook`: a classic
    tracepoint "category:event", or the event of a raw tracepoint. A tp_btf program's target is set before
    load instead (set_attach_target), and attached with attach()."""
    category, sep, event = hook.partition(":")
    link = (_lib.bpf_program__attach_tracepoint(prog, category.encode(), event.encode()) if sep
            else _lib.bpf_program__attach_raw_tracepoint(prog, hook.encode()))
    if not link:
        raise fail(f"cannot attach to {hook}")
    return link


def attach_uprobe(prog: int, binary: str, function: str, retprobe: bool = False) -> int:
    """A uprobe (or, retprobe, a uretprobe) on `function` of `binary` (a path), in every process."""
    opts = UprobeOpts(sz=ctypes.sizeof(UprobeOpts), func_name=function.encode(), retprobe=retprobe)
    link = _lib.bpf_program__attach_uprobe_opts(prog, -1, binary.encode(), 0, ctypes.byref(opts))
    if not link:
        raise fail(f"cannot attach a uprobe to {binary}:{function}")
    return link


def attach_perf_event(prog: int, perf_fd: int) -> int:
    link = _lib.bpf_program__attach_perf_event(prog, perf_fd)
    if not link:
        raise fail("cannot attach to the perf event")
    return link


def set_attach_target(prog: int, function: str) -> None:
    """A tp_btf (or fentry) program's target, by its BTF name, before load."""
    if (code := _lib.bpf_program__set_attach_target(prog, 0, function.encode())) < 0:
        raise fail(f"no attach target {function}", code)


def map_type_supported(map_type: int) -> bool:
    return _lib.libbpf_probe_bpf_map_type(map_type, None) == 1


def link_fd(link: int) -> int:
    return _lib.bpf_link__fd(link)


def destroy_link(link: int) -> None:
    _lib.bpf_link__destroy(link)


def close(obj: int) -> None:
    _lib.bpf_object__close(obj)


def btf(obj: int) -> int:
    return _lib.bpf_object__btf(obj)


def btf_type(btf_ptr: int, type_id: int) -> tuple[str, int, int, int, int]:
    """A BTF type: (name, kind, vlen, size or referenced type, address of what follows its header), as
    struct btf_type (include/uapi/linux/btf.h) holds them: name_off, info (kind, vlen), size/type."""
    address = _lib.btf__type_by_id(btf_ptr, type_id)
    if not address:
        raise fail(f"no BTF type {type_id}")
    name_off, info, size_or_type = (c_uint32 * 3).from_address(address)
    return (_lib.btf__name_by_offset(btf_ptr, name_off).decode(), (info >> 24) & 0x1F, info & 0xFFFF,
            size_or_type, address + 12)


def parse_btf(path: Path) -> int:
    """A BTF file (the kernel's, /sys/kernel/btf/vmlinux) read by libbpf; kept for the process's life."""
    btf_ptr = _lib.btf__parse(str(path).encode(), None)
    if not btf_ptr:
        raise fail(f"cannot read BTF from {path}")
    return btf_ptr


def btf_find(btf_ptr: int, type_name: str, kind: int) -> int | None:
    type_id = _lib.btf__find_by_name_kind(btf_ptr, type_name.encode(), kind)
    return type_id if type_id > 0 else None


def btf_name(btf_ptr: int, offset: int) -> str:
    return _lib.btf__name_by_offset(btf_ptr, offset).decode()


def find_map(obj: int, map_name: str) -> int | None:
    """A map by name; also the object's global data (".rodata", ".bss")."""
    return _lib.bpf_object__find_map_by_name(obj, map_name.encode()) or None


def set_max_entries(m: int, entries: int) -> None:
    if (code := _lib.bpf_map__set_max_entries(m, entries)) < 0:
        raise fail(f"cannot size map {name(m, True)}", code)


def initial_value(m: int) -> ctypes.Array:
    """The memory of a global data map (".rodata") before load: what is written there is what loads."""
    size = c_size_t()
    address = _lib.bpf_map__initial_value(m, ctypes.byref(size))
    if not address:
        raise fail(f"no initial value for {name(m, True)}")
    return (ctypes.c_char * size.value).from_address(address)


def map_info(m: int) -> tuple[int, int, int, int, int, int, int]:
    """(fd, type, key size, value size, max entries, BTF key type id, BTF value type id)."""
    return (_lib.bpf_map__fd(m), _lib.bpf_map__type(m), _lib.bpf_map__key_size(m), _lib.bpf_map__value_size(m),
            _lib.bpf_map__max_entries(m), _lib.bpf_map__btf_key_type_id(m), _lib.bpf_map__btf_value_type_id(m))


def lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    value = ctypes.create_string_buffer(value_size)
    if _lib.bpf_map_lookup_elem(fd, key, value) < 0:
        if ctypes.get_errno() == 2:  # ENOENT
            return None
        raise fail("bpf_map_lookup_elem")
    return value.raw


def update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    if _lib.bpf_map_update_elem(fd, key, value, flags) < 0:
        raise fail("bpf_map_update_elem")


def delete(fd: int, key: bytes) -> bool:
    """False when the key was not there."""
    if _lib.bpf_map_delete_elem(fd, key) < 0:
        if ctypes.get_errno() == 2:
            return False
        raise fail("bpf_map_delete_elem")
    return True


def keys(fd: int, key_size: int) -> list[bytes]:
    """Every key, one syscall each (for maps without batch operations: LPM tries)."""
    found: list[bytes] = []
    key, nxt = None, ctypes.create_string_buffer(key_size)
    while _lib.bpf_map_get_next_key(fd, key, nxt) == 0:
        found.append(nxt.raw)
        key = ctypes.create_string_buffer(nxt.raw, key_size)
    return found


def lookup_batch(fd: int, key_size: int, value_size: int, chunk: int) -> tuple[bytes, bytes, int] | None:
    """Every (key, value) of a hash or array map with BPF_MAP_LOOKUP_BATCH, `chunk` entries per syscall:
    (keys, values, count) laid end to end. None when the kernel has no batch operations for this map."""
    keys_out, values_out, n = bytearray(), bytearray(), 0
    token_in, token_out = None, ctypes.create_string_buffer(max(key_size, 8))
    key_buf = ctypes.create_string_buffer(chunk * key_size)
    value_buf = ctypes.create_string_buffer(chunk * value_size)
    opts = BatchOpts(sz=ctypes.sizeof(BatchOpts))
    while True:
        count = c_uint32(chunk)
        code = _lib.bpf_map_lookup_batch(fd, token_in, token_out, key_buf, value_buf, ctypes.byref(count),
                                         ctypes.byref(opts))
        err = ctypes.get_errno() if code < 0 else 0
        if code < 0 and err not in (2,):  # ENOENT: the last batch
            if err in (22, 95, 524) and n == 0:  # EINVAL, EOPNOTSUPP, ENOTSUPP: no batch ops here
                return None
            raise fail("bpf_map_lookup_batch")
        keys_out += key_buf.raw[:count.value * key_size]
        values_out += value_buf.raw[:count.value * value_size]
        n += count.value
        if code < 0:
            return bytes(keys_out), bytes(values_out), n
        token_in = token_out
        token_out = ctypes.create_string_buffer(max(key_size, 8))


class RingBuffer:
    """A BPF ring buffer read with libbpf's ring_buffer__poll; `on_sample` gets each record's bytes."""

    def __init__(self, fd: int, on_sample) -> None:  # type: ignore[no-untyped-def]
        def sample(_ctx: int, data: int, size: int) -> int:
            on_sample(ctypes.string_at(data, size))
            return 0
        self._callback = SampleFn(sample)  # kept referenced while libbpf may call it
        self.rb = _lib.ring_buffer__new(fd, ctypes.cast(self._callback, c_void_p), None, None)
        if not self.rb:
            raise fail("ring_buffer__new")

    def consume(self) -> None:
        """Every record in the buffer now, without waiting: for producers that do not wake the reader
        (BPF_RB_NO_WAKEUP), read on a schedule instead."""
        code = _lib.ring_buffer__consume(self.rb)
        if code < 0:
            raise fail("ring_buffer__consume", code)

    def close(self) -> None:
        if self.rb:
            _lib.ring_buffer__free(self.rb)
            self.rb = None
