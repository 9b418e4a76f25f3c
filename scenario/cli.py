"""`lmp scenario run|attach|compare`: the argument parsing; the work is in the other modules."""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

from exporters._lib.bpf import LoadError

from .loader import FAMILIES, Uprobe
from .target import TargetError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def say(message: str) -> None:
    print(f"lmp scenario: {message}", file=sys.stderr, flush=True)


def families(text: str) -> tuple[str, ...]:
    chosen = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in chosen if f not in FAMILIES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown event families {', '.join(unknown)} (known: {', '.join(FAMILIES)})")
    return chosen


def uprobe(text: str) -> Uprobe:
    try:
        return Uprobe.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _recording_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", type=Path, help="output directory (default: ./lmp-scenario-NAME-TIME)")
    p.add_argument("--events", type=families, default=tuple(FAMILIES), metavar="LIST",
                   help=f"event families to record, comma-separated (default: all: {','.join(FAMILIES)}); "
                        "the time breakdown is always recorded")
    p.add_argument("--children", action="store_true", help="also follow child processes (threads always are)")
    p.add_argument("--uprobe", type=uprobe, action="append", default=[], metavar="LIB:SYMBOL",
                   help="also record calls of this user-space function, e.g. libc:malloc (repeatable, up to 8)")
    p.add_argument("--frequency", type=int, default=99, help="on-CPU samples per second (default 99)")
    p.add_argument("--buffer-mb", type=float, default=8, help="ring buffer size in MiB (default 8, at least "
                   "one 4 KiB page); events that do not fit are counted as lost")
    p.add_argument("--max-events", type=int, default=1_000_000, help="events kept at most (default 1000000; "
                   "writing the results takes about 20 s a million)")
    p.add_argument("--quiet", "-q", action="store_true", help="print no breakdown table")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sc = sub.add_parser("scenario", help="follow one process into the kernel: timeline, breakdown, flame graphs")
    ss = sc.add_subparsers(dest="scenario_command", required=True)
    rn = ss.add_parser("run", help="start a command and follow it from its first instruction",
                       usage="lmp scenario run [options] -- CMD ARGS...")
    _recording_options(rn)
    rn.add_argument("--duration", type=float, help="stop after this many seconds (and stop the command)")
    rn.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    rn.set_defaults(func=cmd_run)
    at = ss.add_parser("attach", help="follow a running process")
    _recording_options(at)
    at.add_argument("--pid", type=int, required=True, help="the process (or one of its threads)")
    at.add_argument("--duration", type=float, required=True, help="seconds to follow it (less if it exits)")
    at.set_defaults(func=cmd_attach)
    cp = ss.add_parser("compare", help="two runs side by side: breakdowns and a differential flame graph")
    cp.add_argument("run_a", type=Path, help="a run's output directory")
    cp.add_argument("run_b", type=Path)
    cp.add_argument("--out", "-o", type=Path, help="also write compare.json, the diff folded stacks and "
                                                    "compare.html here")
    cp.set_defaults(func=cmd_compare)


def _out(args: argparse.Namespace, name: str) -> Path:
    if args.out:
        return args.out
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).name)[:40] or "run"
    return Path(f"lmp-scenario-{safe}-{time.strftime('%Y%m%d-%H%M%S')}")


def _record(args: argparse.Namespace, start, name: str) -> int:  # type: ignore[no-untyped-def]
    """Record with start(options, stop), write the results, print the breakdown."""
    from . import breakdown, results
    from .session import Options

    if os.geteuid() != 0:
        say("must run as root (loading eBPF programs needs CAP_SYS_ADMIN and CAP_BPF)")
        return EXIT_FAILED
    if args.duration is not None and args.duration <= 0:
        say("--duration must be positive")
        return EXIT_USAGE
    opts = Options(out=_out(args, name), families=args.events, children=args.children, uprobes=tuple(args.uprobe),
                   duration=args.duration, frequency=args.frequency, buffer_mb=args.buffer_mb,
                   max_events=args.max_events, announce=not args.quiet)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C ends the recording; the results are still written
        signal.signal(sig, lambda *_: stop.set())
    try:
        outcome = start(opts, stop)
    except TargetError as err:
        say(str(err))
        return EXIT_USAGE
    except (LoadError, OSError) as err:
        say(str(err))
        return EXIT_FAILED
    summary = results.write(outcome, opts)
    if not args.quiet:
        info = outcome.info
        ended = {"exit": "exited", "duration": "--duration passed", "interrupt": "interrupted"}[info["ended_by"]]
        code = f", exit code {info['exit_code']}" if info.get("exit_code") is not None else ""
        print(f"\nlmp scenario: {' '.join(info['command']) or info['pid']} (pid {info['pid']}): {ended}{code}\n\n"
              f"{breakdown.table(summary)}\n\nresults in {opts.out}/: report.html (open it in a browser), "
              f"timeline.json (Perfetto UI), breakdown.json, events.json, *.folded, *.speedscope.json",
              file=sys.stderr)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from .session import run_command
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        say("no command given: lmp scenario run [options] -- CMD ARGS...")
        return EXIT_USAGE
    return _record(args, lambda opts, stop: run_command(argv, opts, stop), argv[0])


def cmd_attach(args: argparse.Namespace) -> int:
    from .session import attach
    return _record(args, lambda opts, stop: attach(args.pid, opts, stop), f"pid{args.pid}")


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare
    try:
        print(compare(args.run_a, args.run_b, args.out))
    except (FileNotFoundError, ValueError) as err:
        say(str(err))
        return EXIT_USAGE
    return EXIT_OK
