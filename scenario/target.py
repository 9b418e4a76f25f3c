"""What a scenario follows: a command it starts, held before its exec until the recorder is attached, or
a process that is already running."""
from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

# How /proc names a thread's state -> the state core.bpf.c starts it in (ST_* there). A running or
# runnable thread starts UNKNOWN: its first event says whether it was on a CPU or waiting for one.
ST_SLEEPING, ST_UNINTERRUPTIBLE, ST_OTHER = 1, 2, 3
PROC_STATE = {"S": ST_SLEEPING, "I": ST_SLEEPING, "D": ST_UNINTERRUPTIBLE}


class TargetError(RuntimeError):
    """The command or process cannot be followed; the message says why."""


def find_command(argv: list[str]) -> str:
    """The executable argv[0] names, as execvp would find it; TargetError when there is none."""
    if not argv:
        raise TargetError("no command given: lmp scenario run [options] -- CMD ARGS...")
    found = shutil.which(argv[0])
    if found is None:
        where = "" if "/" in argv[0] else " in $PATH"
        raise TargetError(f"command not found{where}: {argv[0]}")
    return found


class Launched:
    """A command forked now and held before its exec: the child blocks reading a pipe, so that the
    recorder can follow it from the exec's first instruction. release() lets it exec; an exec that fails
    anyway (a permission, a bad ELF) comes back as TargetError through a close-on-exec pipe."""

    def __init__(self, argv: list[str]) -> None:
        self.path = find_command(argv)
        self.argv = argv
        go_r, self.go_w = os.pipe()
        self.err_r, err_w = os.pipe()
        os.set_inheritable(err_w, False)
        self.pid = os.fork()
        if self.pid == 0:  # the child: only async-signal-safe work from here to the exec
            try:
                os.close(self.go_w)
                os.close(self.err_r)
                if os.read(go_r, 1) != b"g":  # the recorder gave up: never run the command
                    os._exit(127)
                os.close(go_r)
                os.execv(self.path, argv)
            except OSError as err:
                os.write(err_w, f"{err.errno}".encode())
            finally:
                os._exit(127)
        os.close(go_r)
        os.close(err_w)
        self.status: int | None = None
        self.released = False

    def release(self) -> None:
        self.released = True
        os.write(self.go_w, b"g")
        os.close(self.go_w)
        failed = os.read(self.err_r, 16)  # returns b"" at the exec (close-on-exec) or the errno
        os.close(self.err_r)
        if failed:
            self.wait()
            raise TargetError(f"cannot run {self.path}: {os.strerror(int(failed))}")

    def cancel(self) -> None:
        """The recording failed: a child still held exits without running the command; a released
        one is stopped."""
        if self.released:
            self.stop()
        else:
            os.close(self.go_w)
            os.close(self.err_r)
            self.wait()

    def poll(self) -> bool:
        """True once the command has exited (and is reaped)."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status is not None

    def wait(self) -> int:
        if self.status is None:
            self.status = os.waitpid(self.pid, 0)[1]
        return self.status

    def stop(self, grace: float = 3.0) -> None:
        """End a command still running when the recording stops (Ctrl-C, --duration): SIGTERM, then
        SIGKILL after `grace` seconds."""
        if self.poll():
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self.poll():
                return
            time.sleep(0.02)
        os.kill(self.pid, signal.SIGKILL)
        self.wait()

    @property
    def exit_code(self) -> int | None:
        if self.status is None:
            return None
        return os.waitstatus_to_exitcode(self.status)


def threads_of(pid: int) -> list[tuple[int, int]]:
    """(tid, the state /proc shows as an ST_* reason) of every thread of a running process; TargetError if there is none."""
    tasks = Path(f"/proc/{pid}/task")
    try:
        tids = sorted(int(t) for t in os.listdir(tasks))
    except FileNotFoundError:
        raise TargetError(f"no process with pid {pid}") from None
    found = []
    for tid in tids:
        try:
            stat = (tasks / str(tid) / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        state = stat.rsplit(")", 1)[1].split()[0]
        found.append((tid, PROC_STATE.get(state, ST_SLEEPING if state == "R" else ST_OTHER)))
    if not found:
        raise TargetError(f"process {pid} has exited")
    return found


def tgid_of(pid: int) -> int:
    """The process a thread id belongs to (a thread's id names its process too)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Tgid:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    raise TargetError(f"no process with pid {pid}")


def alive(tid: int) -> bool:
    return Path(f"/proc/{tid}").exists()
