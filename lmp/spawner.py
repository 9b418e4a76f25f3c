"""The spawner: the process `lmp run` starts as. It imports what an exporter needs, once, and then forks:
first the launcher (lmp/launcher.py: the config, the supervisor, Prometheus), which is the one to talk to
it, then, on the launcher's request, each exporter and the admin service.

Each exporter stays a process of its own (its PID, its port, restarted alone), but shares the pages the
spawner filled before forking it: the interpreter, prometheus_client, libbpf, the parsed specs; so do the
admin and the launcher. Nine exporters forked so hold a few MB each where fresh interpreters hold tens
(docs/performance.md). The spawner is single-threaded, so a fork never copies a lock another thread held.

The launcher talks to it over a socketpair, one JSON message per datagram (SOCK_SEQPACKET keeps their
bounds): {"spawn": "exporter" | "admin", "args": {...}} with the child's stdout and stderr passed along as
file descriptors (SCM_RIGHTS), answered {"pid": N} or {"error": "..."}; each child's exit comes as
{"exited": pid, "code": c} (c < 0: killed by signal -c), in between or after. When the launcher closes
the socket or exits, the spawner stops its other children (SIGTERM, then SIGKILL) and exits with the
launcher's exit code. A SIGTERM to the spawner goes on to the launcher, which stops everything in order.
"""
from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

PR_SET_NAME, PR_SET_PDEATHSIG = 15, 1
STOP_SECONDS = 20.0  # how long the spawner waits for its children after SIGTERM, before SIGKILL
MESSAGE = 65536  # the largest message: a request's args or a reply


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In a child: get `sig` when the parent exits, whatever ends it (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def name_process(name: str) -> None:
    """What `ps -o comm`, top and /proc/PID/comm show (15 characters at most)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15])


def exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


class Spawner:
    """The launcher's side of the spawner. Created once, first thing: `preload` runs, then the process
    forks; the child returns from here as the launcher, and the parent stays the spawner for good (it
    exits with the launcher's exit code). `targets` maps a target's name to the function a child runs
    with the request's args (returning its exit code)."""

    def __init__(self, targets: dict[str, Callable[[dict[str, Any]], int]], preload: Callable[[], None]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        preload()
        launcher = os.fork()
        if launcher != 0:
            ours.close()
            code = 1
            try:
                code = _Server(theirs, targets, launcher).run()
            finally:
                os._exit(code)
        theirs.close()
        die_with_parent()
        self.sock = ours
        self.exits: list[tuple[int, int]] = []  # exits received while waiting for a reply

    def fileno(self) -> int:
        return self.sock.fileno()

    def spawn(self, target: str, args: dict[str, Any], stdout: int, stderr: int) -> int:
        """A new child running `target`; its pid. OSError if the spawner is gone or refused."""
        socket.send_fds(self.sock, [json.dumps({"spawn": target, "args": args}).encode()], [stdout, stderr])
        while True:
            message = self._receive(timeout=30.0)
            if "exited" in message:
                self.exits.append((message["exited"], message["code"]))
            elif "pid" in message:
                return int(message["pid"])
            else:
                raise OSError(f"the spawner could not start {target}: {message.get('error')}")

    def _receive(self, timeout: float | None) -> dict[str, Any]:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise OSError("the spawner did not answer")
        data = self.sock.recv(MESSAGE)
        if not data:
            raise OSError("the spawner exited")
        return json.loads(data)

    def exited(self) -> list[tuple[int, int]]:
        """(pid, exit code) of every child that ended since the last call; never blocks."""
        found, self.exits = self.exits, []
        while True:
            ready, _, _ = select.select([self.sock], [], [], 0)
            if not ready:
                return found
            data = self.sock.recv(MESSAGE)
            if not data:
                return found
            message = json.loads(data)
            if "exited" in message:
                found.append((message["exited"], message["code"]))

    def stop(self) -> None:
        """No more requests: the spawner stops whatever children are left, and exits when we do."""
        self.sock.close()


class _Server:
    """The spawner's side: its loop, in the forked child."""

    def __init__(self, sock: socket.socket, targets: dict[str, Callable[[dict[str, Any]], int]], launcher: int) -> None:
        self.sock, self.targets, self.launcher = sock, targets, launcher
        self.launcher_code: int | None = None
        self.children: set[int] = set()
        name_process("lmp-spawner")
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the launcher too: its to act on
        self.wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # handlers, so that the wakeup fd hears of them
        signal.signal(signal.SIGTERM, lambda *_: None)

    def run(self) -> int:
        """Serve the launcher's requests until it is done; its exit code."""
        while self.launcher_code is None:
            try:
                ready, _, _ = select.select([self.sock, self.wakeup_r], [], [])
            except InterruptedError:
                continue
            if self.wakeup_r in ready:
                signals = os.read(self.wakeup_r, 512)
                if signal.SIGTERM in signals:
                    os.kill(self.launcher, signal.SIGTERM)  # it stops everything, in order, then exits
                self._reap()
            if self.sock in ready:
                data, fds, _, _ = socket.recv_fds(self.sock, MESSAGE, 2)
                if not data:
                    break  # the launcher is done with us
                self._spawn(json.loads(data), fds)
        self._stop_children()
        if self.launcher_code is None:
            _, status = os.waitpid(self.launcher, 0)
            self.launcher_code = exit_code(status)
        return self.launcher_code

    def _spawn(self, request: dict[str, Any], fds: list[int]) -> None:
        target = self.targets.get(request.get("spawn", ""))
        if target is None or len(fds) != 2:
            self._send({"error": f"no target {request.get('spawn')!r}"})
            for fd in fds:
                os.close(fd)
            return
        pid = os.fork()
        if pid == 0:
            self._child(target, request.get("args", {}), fds)
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        self._send({"pid": pid})

    def _child(self, target: Callable[[dict[str, Any]], int], args: dict[str, Any], fds: list[int]) -> None:
        """In the new child: its own process group (a terminal's Ctrl-C is for `lmp run`), the descriptors
        it was given as stdout and stderr, the default signal handling, and then its target."""
        code = 1
        try:
            os.setpgid(0, 0)
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            die_with_parent()
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            for fd in (*fds, self.wakeup_r):
                os.close(fd)
            self.sock.close()
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            code = target(args)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:  # the child must never go back to the spawner's loop
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.launcher:
                self.launcher_code = exit_code(status)
                continue
            self.children.discard(pid)
            self._send({"exited": pid, "code": exit_code(status)})

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.sock.send(json.dumps(message).encode())
        except OSError:  # `lmp run` is gone: the loop ends at the next read
            pass

    def _stop_children(self) -> None:
        for pid in self.children:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while self.children and time.monotonic() < deadline:
            self._reap()
            if self.children:
                select.select([self.wakeup_r], [], [], 0.05)
                try:
                    os.read(self.wakeup_r, 512)
                except BlockingIOError:
                    pass
        for pid in self.children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
