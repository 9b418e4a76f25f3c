"""`lmp admin serve`: a real server (cheroot); the first start creates the admin and prints its password once."""
from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request

from tests.conftest import LMP, free_port


def post(url: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def start(port: int, data_dir) -> tuple[subprocess.Popen, str]:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen([*LMP, "admin", "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir)],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                return proc, ""
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"admin did not start: {proc.communicate()[1]}")


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def test_first_start_prints_the_admin_password_once(tmp_path):
    port = free_port()
    proc, _ = start(port, tmp_path)
    stderr = stop(proc)
    line = next(l for l in stderr.splitlines() if "created the first admin account" in l)
    password = line.split("password ")[1].strip()
    proc, _ = start(port, tmp_path)
    try:
        status, tokens = post(f"http://127.0.0.1:{port}/api/v1/auth/login", {"username": "admin", "password": password})
        assert status == 200
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/components",
                                         headers={"Authorization": f"Bearer {tokens['access_token']}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and len(json.load(response)) >= 12
        assert post(f"http://127.0.0.1:{port}/api/v1/auth/login", {"username": "admin", "password": "wrong"})[0] == 401
    finally:
        second = stop(proc)
    assert "created the first admin account" not in second  # shown once, on the first start only


def test_set_password_gives_a_lost_admin_back(tmp_path):
    port = free_port()
    proc, _ = start(port, tmp_path)
    try:
        result = subprocess.run([*LMP, "admin", "set-password", "admin", "--password-stdin", "--data-dir",
                                 str(tmp_path)], input="a-new-Pa55word-q8\n", capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        status, _ = post(f"http://127.0.0.1:{port}/api/v1/auth/login", {"username": "admin", "password": "a-new-Pa55word-q8"})
        assert status == 200
        short = subprocess.run([*LMP, "admin", "set-password", "admin", "--password-stdin", "--data-dir",
                                str(tmp_path)], input="short\n", capture_output=True, text=True, timeout=60)
        assert short.returncode == 2 and "at least 12 characters" in short.stderr
        nobody = subprocess.run([*LMP, "admin", "set-password", "nobody", "--password-stdin", "--data-dir",
                                 str(tmp_path)], input="long-enough-Ahw9qk\n", capture_output=True, text=True, timeout=60)
        assert nobody.returncode == 2 and "no user named 'nobody'" in nobody.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/docs", timeout=10) as response:
            assert b"swagger-ui-bundle.js" in response.read()  # the docs page, through the real server
    finally:
        stop(proc)
