"""The ``voicex`` command as a user runs it: a real process, real signals, a real data directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pymongo import MongoClient

from voicex import __version__
from voicex.embedded_db import free_port

VOICEX = [sys.executable, "-m", "voicex"]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VOICEX_")}
    env.update(extra)
    return env


def test_version_and_help() -> None:
    version = subprocess.run([*VOICEX, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"voicex {__version__}"
    usage = subprocess.run([*VOICEX, "--help"], capture_output=True, text=True, check=True)
    for command in ("serve", "admin"):
        assert command in usage.stdout


def test_bad_setting_exits_1_naming_the_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [*VOICEX, "serve"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_clean_env(VOICEX_PORT="eighty"),
        timeout=30,
    )
    assert result.returncode == 1
    assert "VOICEX_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_serve_with_no_environment_uses_embedded_db_in_data_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*VOICEX, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert first_line.strip() == f"Voicex listening on http://0.0.0.0:{port}"
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


def test_admin_create_then_refuses_a_duplicate(tmp_path: Path, mongo_uri: str) -> None:
    db_name = f"cli_{os.getpid()}"
    env = _clean_env(VOICEX_MONGODB_URI=mongo_uri, VOICEX_DB_NAME=db_name, VOICEX_DATA_DIR=str(tmp_path))
    try:
        _admin_create_checks(env)
    finally:
        with MongoClient(mongo_uri) as client:
            client.drop_database(db_name)


def _admin_create_checks(env: dict[str, str]) -> None:
    command = [*VOICEX, "admin", "create", "--email", "Boss@Example.com", "--password", "long enough"]
    created = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert created.returncode == 0, created.stderr
    assert "Created platform admin boss@example.com" in created.stdout
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    short = subprocess.run(
        [*VOICEX, "admin", "create", "--email", "x@example.com", "--password", "short"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert short.returncode == 1 and "at least 8 characters" in short.stderr


def test_serve_warms_the_embedded_models_at_start_so_the_first_call_does_not_wait(tmp_path: Path) -> None:
    import pytest

    import providers.local as local_stack

    if not local_stack.installed():
        pytest.skip("the local extra is not installed")
    port = free_port()
    process = subprocess.Popen(
        [*VOICEX, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_clean_env(VOICEX_LOG_LEVEL="INFO"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready: dict[str, object] | None = None
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 120
        while ready is None and time.monotonic() < deadline and process.poll() is None:
            line = process.stderr.readline()
            if '"embedded models ready"' in line:
                ready = json.loads(line)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert ready is not None, "voicex serve never reported the embedded models ready"
    assert isinstance(ready["ms"], int) and ready["ms"] > 0
