"""What the admin keeps on disk is root's alone: the data directory 0700, the database, the signing key and
the service token 0600, whoever made the directory first and with whatever umask."""
from __future__ import annotations

import os
import stat
import subprocess

from admin import create_app
from admin.users import first_admin, write_service_token
from tests.conftest import LMP


def mode(path) -> int:  # type: ignore[no-untyped-def]
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_directory_made_first_by_lmp_run_is_closed_and_the_files_are_root_only(tmp_path, monkeypatch):
    monkeypatch.delenv("LMP_JWT_SECRET_KEY", raising=False)
    data = tmp_path / "lmp"
    old = os.umask(0o022)  # as `lmp run` makes it, for Prometheus' data beneath it: 0755
    try:
        (data / "prometheus").mkdir(parents=True)
        assert mode(data) == 0o755
        app = create_app({"TESTING": True, "DATA_DIR": str(data)})
        with app.app_context():
            first_admin()
            write_service_token(data / "service.token")
    finally:
        os.umask(old)
    assert mode(data) == 0o700
    for name in ("admin.db", "jwt.key", "service.token"):
        assert mode(data / name) == 0o600, name


def test_files_left_open_by_an_earlier_version_are_closed_at_the_next_start(tmp_path, monkeypatch):
    monkeypatch.delenv("LMP_JWT_SECRET_KEY", raising=False)
    create_app({"TESTING": True, "DATA_DIR": str(tmp_path)})
    for path, m in ((tmp_path, 0o755), (tmp_path / "admin.db", 0o644), (tmp_path / "jwt.key", 0o644)):
        os.chmod(path, m)
    result = subprocess.run([*LMP, "admin", "create-user", "alice", "--password-stdin", "--data-dir", str(tmp_path)],
                            input="alice-pass-Ahw9qk\n", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (mode(tmp_path), mode(tmp_path / "admin.db"), mode(tmp_path / "jwt.key")) == (0o700, 0o600, 0o600)
