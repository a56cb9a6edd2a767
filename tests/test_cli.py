"""The ``voicex`` command as a user runs it: a real process, real signals, a real data directory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.voicex_process import VOICEX, clean_env, run
from voicex import __version__
from voicex.platform.embedded_db import free_port


def test_version_and_help() -> None:
    version = subprocess.run([*VOICEX, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"voicex {__version__}"
    usage = subprocess.run([*VOICEX, "--help"], capture_output=True, text=True, check=True)
    for command in ("serve", "admin"):
        assert command in usage.stdout


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_serve_with_no_environment_uses_embedded_db_in_data_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*VOICEX, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert first_line.startswith(f"Voicex listening on http://0.0.0.0:{port}")  # "(N workers)": one per core
        assert _get_json(f"http://127.0.0.1:{port}/api/health")["status"] == "ok"
        assert _get_json(f"http://127.0.0.1:{port}/api/ready")["status"] == "ready"
        embedded = json.loads((tmp_path / "data" / "db.json").read_text())

        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=10)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read() if process.stderr else ""
    assert returncode == 0, stderr
    # bounded, not timed: a model load already running (the warm-up) is let finish rather than crash the exit
    assert took < 20.0, f"shutdown took {took:.1f} s"
    assert (tmp_path / "data" / "db").is_dir() and any((tmp_path / "data" / "db").iterdir())
    assert (tmp_path / "data" / "secrets" / "jwt_secret").is_file()
    assert not (tmp_path / "data" / "db.json").exists()
    try:
        os.kill(embedded["pid"], 0)
        raise AssertionError("the embedded database process outlived the server")
    except ProcessLookupError:
        pass
    assert "Traceback" not in stderr


@pytest.mark.slow
async def test_admin_create_then_refuses_a_duplicate(services, tmp_path: Path) -> None:
    env = clean_env(VOICEX_MONGODB_URI=services.settings.mongodb_uri, VOICEX_DB_NAME=services.settings.db_name)
    folder = tmp_path / "admin"
    folder.mkdir()
    await asyncio.to_thread(_admin_create_checks, env, folder)
    assert not (folder / "data").exists()  # an admin command generates no secrets: it signs and decrypts nothing


def _admin_create_checks(env: dict[str, str], cwd: Path) -> None:
    command = ["admin", "create", "--email", "Boss@Example.com", "--password", "long enough"]
    created = run(command, env, cwd)
    assert created.returncode == 0, created.stderr
    assert "Created platform admin boss@example.com" in created.stdout
    again = run(command, env, cwd)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    short = run(["admin", "create", "--email", "x@example.com", "--password", "short"], env, cwd)
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
