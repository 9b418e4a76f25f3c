"""irq: O_DIRECT writes to the repo's disk must raise that disk's interrupt once per request, and every
interrupt's handler count must match the kernel's own count (/proc/interrupts) over the same window."""
from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import bracketed, direct_writes, within

NAME = "lmp_irq_handler_duration_seconds"
WRITES = 40
BLOCK = 4096


def interrupts() -> dict[int, int]:
    """/proc/interrupts: how often the kernel took each numbered interrupt since boot, summed over CPUs."""
    lines = Path("/proc/interrupts").read_text().splitlines()
    cpus = len(lines[0].split())
    counts = {}
    for line in lines[1:]:
        head, *fields = line.split()
        if head.rstrip(":").isdigit():
            counts[int(head.rstrip(":"))] = sum(int(f) for f in fields[:cpus])
    return counts


def disk_irqs(path: Path) -> set[int]:
    """The interrupts of the device holding `path`: walk up its sysfs device to the one that owns them
    (a PCI function's msi_irqs, or its legacy `irq`)."""
    st = os.stat(path)
    device = Path(os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"))
    for node in (device, *device.parents):
        if (node / "msi_irqs").is_dir():
            return {int(n) for n in os.listdir(node / "msi_irqs")}
        if (node / "irq").is_file() and int((node / "irq").read_text()) > 0:
            return {int((node / "irq").read_text())}
    raise AssertionError(f"no interrupt found for the device of {path} ({device})")


def handled(scrape, irq: int, series: str = "_count") -> float:
    """Handler runs (or, with "_sum", seconds) counted for an interrupt, labelled "N:handler name"."""
    for s in scrape.families[NAME].samples if NAME in scrape.families else ():
        if s.name == NAME + series and s.labels["irq"].split(":")[0] == str(irq):
            return s.value
    return 0.0


def test_disk_interrupts_match_the_kernel_count(exporter, disk_dir):
    irq = exporter("irq")
    folder = disk_dir
    disk = disk_irqs(folder)
    k1, before, k2 = bracketed(interrupts, irq.scrape)
    direct_writes(folder / "data", WRITES, BLOCK)  # each waits for the completion the device signals
    k3, after, k4 = bracketed(interrupts, irq.scrape)

    # The disk interrupted at least once per write (one request at a time, each completion signalled).
    disk_runs = sum(handled(after, n) - handled(before, n) for n in disk)
    assert disk_runs >= WRITES
    # Every interrupt, against the kernel's count read on both sides of each scrape. A line shared by
    # several handlers runs each of them per interrupt.
    for n, count in k4.items():
        actions = Path(f"/sys/kernel/irq/{n}/actions").read_text().strip().count(",") + 1
        counted = handled(after, n) - handled(before, n)
        within(counted / actions, k3.get(n, 0) - k2.get(n, 0), count - k1.get(n, 0), f"irq {n}")
    spent = sum(handled(after, n, "_sum") - handled(before, n, "_sum") for n in disk)
    assert 0 < spent / disk_runs < 1e-3  # a handler takes microseconds
