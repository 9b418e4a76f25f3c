"""A stand-in for `lmp scenario` in the admin tests: takes the same arguments, loads nothing, and writes a
minimal run.json and breakdown.json into --out, at once or, given --duration, when the duration ends or
SIGINT comes (as the real recorder does). The command `false` makes it fail, as a recorder that cannot start does."""
import json
import signal
import sys
import threading
from pathlib import Path

args = sys.argv[1:]
out = Path(args[args.index("--out") + 1])
duration = float(args[args.index("--duration") + 1])
command = args[args.index("--") + 1:] if "--" in args else []
if command[:1] == ["false"]:
    print("lmp scenario: cannot run false", file=sys.stderr)
    sys.exit(2)
stop = threading.Event()
signal.signal(signal.SIGINT, lambda *_: stop.set())
ended = "interrupt" if stop.wait(min(duration, 30) if duration >= 5 else 0) else "exit"
out.mkdir(parents=True, exist_ok=True)
(out / "breakdown.json").write_text(json.dumps({"wall_seconds": 0.5, "threads": 1, "parts": {"sleeping": 0.5},
                                                "syscalls": [], "events": {"syscall": {"made": 3, "lost": 0}}}))
(out / "report.html").write_text("<!DOCTYPE html><title>fake</title>")
(out / "run.json").write_text(json.dumps({"mode": args[0], "ended_by": ended}))
