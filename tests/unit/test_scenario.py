"""Scenario analysis without BPF: folded stacks, speedscope, the differential graph, symbol lookup in a
real binary, --uprobe parsing, event layouts, the report page, the ring buffer reader over a file laid
out as the kernel maps a ring buffer."""
from __future__ import annotations

import ctypes
import json
import mmap
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from scenario import events, flame, report, requests
from scenario.loader import Uprobe
from scenario.record import Recorder
from scenario.ringbuf import BUSY, DISCARD, Ring, Run, record_size, runs
from scenario.symbols import Maps, Symbolizer, parse_maps, symbol_table

PROGRAM = "int helper(int x) { return x * 3; }\nint main(int c, char **v) { return helper(c); }\n"


def test_folded_round_trip_speedscope_and_tree():
    folded = Counter({"a;b;c": 3, "a;b": 2, "a;d": 5})
    assert flame.parse_folded(flame.folded_text(folded)) == folded
    scope = flame.speedscope(folded, "x", "none")
    names = [f["name"] for f in scope["shared"]["frames"]]
    stacks = [";".join(names[i] for i in s) for s in scope["profiles"][0]["samples"]]
    assert dict(zip(stacks, scope["profiles"][0]["weights"])) == dict(folded)
    root = flame.tree(folded)
    assert root["v"] == 10 and [c["n"] for c in root["c"]] == ["a"]
    assert [(c["n"], c["v"]) for c in root["c"][0]["c"]] == [("b", 5), ("d", 5)]


def test_diff_normalises_each_run_to_its_total():
    a, b = Counter({"x;y": 10, "x;z": 10}), Counter({"x;y": 30, "x;w": 10})
    rows = {s: (va, vb) for s, va, vb in flame.diff(a, b)}
    assert rows == {"x;y": (500000, 750000), "x;z": (500000, 0), "x;w": (0, 250000)}
    tree = flame.diff_tree(list(flame.diff(a, b)))
    assert tree["a"] == tree["b"] == 1_000_000 and tree["v"] == 2_000_000


def test_symbols_of_a_pie_binary_from_its_maps(tmp_path):
    src = tmp_path / "p.c"
    src.write_text(PROGRAM)
    binary = tmp_path / "p"
    subprocess.run(["gcc", "-O1", "-fno-inline", "-o", str(binary), str(src)], check=True)
    nm = subprocess.run(["nm", str(binary)], capture_output=True, text=True, check=True).stdout
    helper = int(re.search(r"^([0-9a-f]+) T helper$", nm, re.M).group(1), 16)
    table = symbol_table(str(binary))
    text = next(seg for seg in table.segments if seg[0] <= helper - table.segments[0][2] < seg[0] + seg[1])
    # As the kernel would map it: the segment holding .text at some base, with its file offset.
    base, offset = 0x555555554000, text[0]
    maps_text = f"{base + text[2] - text[0] + offset:x}-{base + text[2] + text[1]:x} r-xp {offset:08x} fd:00 1 {binary}\n"
    maps = Maps()
    maps.snapshots[7] = [parse_maps(maps_text)]
    sym = Symbolizer(maps)
    assert sym.user(7, base + helper + 1) == "helper"
    assert sym.user(7, 0x10) == "[unknown]"


def test_uprobe_specs():
    assert Uprobe.parse("libc:malloc").bcc_name == "c"
    assert Uprobe.parse("/usr/bin/prog:main") == Uprobe("/usr/bin/prog", "main")
    assert Uprobe.parse("libssl.so.3:SSL_write").bcc_name == "ssl"
    for bad in ("malloc", ":x", "libc:"):
        with pytest.raises(ValueError):
            Uprobe.parse(bad)


def test_event_layouts_match_the_c_structs():
    """Sizes from the C structs in scenario/bpf/ (natural alignment, as clang lays them out)."""
    sizes = {1: 72, 2: 328, 3: 56, 4: 48, 5: 72, 6: 88, 7: 56, 8: 288, 11: 40, 12: 56, 13: 64}
    assert {k: ctypes.sizeof(cls) for k, (_, cls) in events.LAYOUTS.items() if k in sizes} == sizes
    assert events._exit_status(3 << 8) == {"code": 3}
    assert events._exit_status(9) == {"signal": "SIGKILL", "core_dumped": False}


def test_request_spans_are_named_as_the_l7_spec_names_its_labels():
    """requests.bpf.c's numbers (l7's P_HTTP..., the enum fields' indexes) read with exporters/l7/l7.yaml."""
    http = requests.describe(1, 1, 404, b"", b"")
    assert http == {"protocol": "http", "method": "GET", "status": 404, "error": False}
    assert requests.describe(1, 2, 503, b"", b"")["error"] and requests.describe(1, 2, 503, b"", b"")["method"] == "POST"
    assert requests.describe(2, 8, 3, b"", b"") == {"protocol": "dns", "qtype": "AAAA", "status": "NXDOMAIN",
                                                    "error": True}
    assert requests.describe(3, 0, 1, b"LPUSH", b"") == {"protocol": "redis", "command": "LPUSH", "status": "error",
                                                         "error": True}
    pg = requests.describe(4, 1, 1, b"", b"42")
    assert (pg["query"], pg["status"], pg["sqlstate_class"]) == ("extended", "error", "42")
    assert requests.title({**http, "role": "server"}) == "HTTP GET 404 (server)"
    assert requests.title({"protocol": "redis", "command": "SET", "status": "ok", "role": "client"}) == \
        "redis SET ok (client)"


def test_report_page_is_self_contained_and_escapes_its_data():
    html = report.page("a <b>", {"kind": "run", "x": "</script><script>alert(1)</script>"})
    assert "</script><script>alert(1)" not in html and "a &lt;b>" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    blob = re.search(r'<script id="lmp-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    assert json.loads(blob)["x"] == "</script><script>alert(1)</script>"
    assert (Path(report.HERE) / "report.js").read_text() in html


def _record(kind: int, length: int = 0, flags: int = 0, **fields: int) -> bytes:
    """One ring buffer record: the 8-byte header, the event, padding to 8 bytes."""
    event = events.LAYOUTS[kind][1](kind=kind, **fields)
    data = bytes(event)[:length or None]
    return ((len(data) | flags).to_bytes(4, "little") + bytes(4) + data).ljust(record_size(len(data)), b"\0")


def _ring_file(path: Path, size: int, consumer: int, records: bytes) -> Path:
    """A file laid out as the kernel maps a ring buffer of `size` bytes: the consumer page, the producer
    page, the data twice; `records` start at position `consumer` (and wrap around the end)."""
    data = bytearray(size)
    for i, byte in enumerate(records):
        data[(consumer + i) % size] = byte
    page = mmap.PAGESIZE
    path.write_bytes(consumer.to_bytes(8, "little").ljust(page, b"\0")
                     + (consumer + len(records)).to_bytes(8, "little").ljust(page, b"\0") + bytes(data) * 2)
    return path


def test_runs_of_records_stop_at_the_first_busy_one():
    call = _record(1, tgid=7, nr=39)
    stream = call * 100 + _record(3, tgid=7) + _record(1, flags=DISCARD) + call * 5000 + _record(10, length=32)
    busy = _record(1, flags=BUSY)
    words = memoryview(bytearray(stream + busy + call * 3)).cast("I")
    found, stop = runs(words, 0, len(words) * 4)
    assert [(r.size, r.count, r.kind) for r in found] == [(80, 100, 1), (64, 1, 3), (80, 5000, 1), (40, 1, 10)]
    assert found[2].offset == 80 * 100 + 64 + 80 and stop == len(stream)
    assert runs(words, 0, 80 * 50) == ([Run(0, 80, 50, 1)], 80 * 50)  # up to the producer position only


def test_the_reader_copies_records_to_the_spool_as_they_lie(tmp_path):
    """Records that wrap around the end of the data, --max-events reached midway, the processes to look
    at again (an mmap, a fork, an exec, also among the events over the cap), decoded from the spool."""
    wanted = [_record(1, tgid=5, nr=39, ret=i) for i in range(30)] + [_record(1, tgid=6, nr=9)]
    wanted += [_record(2, tgid=5, nr=257, path=b"/etc/hosts"), _record(3, tgid=5, reason=1)]
    over = [_record(9, length=32, tgid=5, child_tgid=8), _record(8, tgid=9, name=b"x"), _record(1, tgid=5)]
    stream = b"".join(wanted + over)
    size, consumer = 4 * mmap.PAGESIZE, 3 * (4 * mmap.PAGESIZE) - 1000  # positions only grow
    path = _ring_file(tmp_path / "ring", size, consumer, stream + _record(1, flags=BUSY))
    rec = Recorder(None, tmp_path / "spool", max_events=len(wanted))  # type: ignore[arg-type]
    with open(path, "r+b") as f:
        rec.ring, rec.spool = Ring(f.fileno(), size), open(rec.spool_path, "wb")
        assert rec.drain() == len(stream)
        rec.close()
    assert (rec.kept, rec.dropped) == (len(wanted), len(over)) and rec.reader_seconds > 0
    assert int.from_bytes(path.read_bytes()[:8], "little") == consumer + len(stream)  # up to the busy one
    assert rec.pending == {6, 8, 9} and rec.tgids == {8}
    decoded = [events.decode(e, 0, []) for e in events.records(rec.spool_path)]
    assert [e["ret"] for e in decoded[:30]] == list(range(30))
    assert [(e["kind"], e.get("name")) for e in decoded[30:]] == [("syscall", "mmap"), ("syscall", "openat"),
                                                                   ("offcpu", None)]
    assert decoded[31]["path"] == "/etc/hosts"
