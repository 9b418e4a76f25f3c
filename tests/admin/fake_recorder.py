"""A stand-in for `lmp scenario` in the admin tests: takes the same arguments, loads nothing, and writes a
minimal run.json and breakdown.json into --out, at once or, given --duration, when the duration ends or
SIGINT comes (as the real recorder does). Like the real one it starts the command it is given and ends it
when the recording ends. The command `false` makes it fail, as a recorder that cannot start does; the
command `true --lmp-test-hang` makes it a recorder that never ends (it ignores SIGINT), for the run's time cap."""
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

args = sys.argv[1:]
out = Path(args[args.index("--out") + 1])
duration = float(args[args.index("--duration") + 1])
command = args[args.index("--") + 1:] if "--" in args else []
if command[:1] == ["false"]:
    print("lmp scenario: cannot run false", file=sys.stderr)
    sys.exit(2)
if command == ["true", "--lmp-test-hang"]:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        time.sleep(60)
stop = threading.Event()
signal.signal(signal.SIGINT, lambda *_: stop.set())
child = subprocess.Popen(command) if command else None
ended = "interrupt" if stop.wait(min(duration, 30) if duration >= 5 else 0) else "exit"
if child is not None:
    try:
        child.wait(timeout=max(0.0, min(duration, 30)))
    except subprocess.TimeoutExpired:
        child.kill()  # the recording is over, so is the command (its own children are not its to end)
        child.wait()
out.mkdir(parents=True, exist_ok=True)
(out / "breakdown.json").write_text(json.dumps({"wall_seconds": 0.5, "threads": 1, "parts": {"sleeping": 0.5},
                                                "syscalls": [], "events": {"syscall": {"made": 3, "lost": 0}}}))
(out / "report.html").write_text("<!DOCTYPE html><title>fake</title>")
(out / "run.json").write_text(json.dumps({"mode": args[0], "ended_by": ended}))
