"""``voicex admin`` beside a running ``voicex serve``: it attaches to the server's database, changes only what it
is asked to, and refuses (rather than creating a database of its own) when pointed at the wrong place."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from pymongo import MongoClient

from tests.voicex_process import clean_env, http, run, start_serve

SCRIPTED = {"Scripted (test) STT", "Scripted (test) LLM", "Scripted (test) TTS"}

pytestmark = pytest.mark.slow


def _active_scripted_globals(data_dir: Path) -> set[str]:
    """The active global scripted providers, read from the server's embedded database (found by its state file)."""
    port = json.loads((data_dir / "db.json").read_text())["port"]
    with MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true") as client:
        found = client["voicex"]["providers"].find({"orgId": None, "providerKey": "scripted", "active": True})
        return {doc["name"] for doc in found}


def test_admin_commands_attach_to_the_running_server_and_leave_its_providers_alone(tmp_path: Path) -> None:
    # The server offers the scripted providers; the admin commands run without that setting, as in the issue.
    server = start_serve(clean_env(VOICEX_ENABLE_SCRIPTED_PROVIDERS="true"), tmp_path)

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return run(["admin", *args], clean_env(), tmp_path)

    try:
        assert http("GET", f"{server.url}/api/setup/status")[1]["platformAdminExists"] is False
        created = admin("create", "--email", "boss@example.com", "--password", "first password")
        assert created.returncode == 0, created.stderr
        assert http("GET", f"{server.url}/api/setup/status")[1]["platformAdminExists"] is True
        assert _active_scripted_globals(tmp_path / "data") == SCRIPTED

        reset = admin("reset-password", "--email", "Boss@Example.com", "--password", "second password")
        assert reset.returncode == 0, reset.stderr
        assert "Set a new password for platform admin boss@example.com" in reset.stdout
        signin = f"{server.url}/api/auth/signin"
        assert http("POST", signin, {"email": "boss@example.com", "password": "first password"})[0] == 401
        assert http("POST", signin, {"email": "boss@example.com", "password": "second password"})[0] == 200
        unknown = admin("reset-password", "--email", "nobody@example.com", "--password", "long enough")
        assert unknown.returncode == 1 and "no user with email nobody@example.com" in unknown.stderr

        # Removing what this catalog lacks is an explicit command that says what it does.
        listed = admin("prune-providers", "--dry-run")
        assert listed.returncode == 0, listed.stderr
        assert "Would deactivate 3 global providers" in listed.stdout
        assert "VOICEX_ENABLE_SCRIPTED_PROVIDERS=false" in listed.stdout  # says which catalog it compared with
        assert all(name in listed.stdout for name in SCRIPTED)
        assert _active_scripted_globals(tmp_path / "data") == SCRIPTED
        pruned = admin("prune-providers")
        assert pruned.returncode == 0, pruned.stderr
        assert "Deactivated 3 global providers" in pruned.stdout
        assert _active_scripted_globals(tmp_path / "data") == set()
        assert "Nothing to deactivate" in admin("prune-providers").stdout
    finally:
        assert server.stop() == 0, server.log()[-2000:]
    assert "Traceback" not in server.log()


def test_admin_from_another_folder_creates_no_database_and_says_where_it_looked(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run(
        ["admin", "create", "--email", "boss@example.com", "--password", "long enough"], clean_env(), elsewhere
    )
    assert result.returncode == 2, result.stderr
    assert f"no Voicex database in {elsewhere / 'data'} (VOICEX_DATA_DIR)" in result.stderr
    assert "folder where you run `voicex serve`" in result.stderr and "VOICEX_MONGODB_URI" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (elsewhere / "data").exists()


def test_admin_on_a_database_no_server_used_names_it(tmp_path: Path, mongo_uri: str) -> None:
    db_name = f"never_served_{uuid.uuid4().hex[:8]}"
    env = clean_env(VOICEX_MONGODB_URI=mongo_uri, VOICEX_DB_NAME=db_name)
    result = run(["admin", "create", "--email", "boss@example.com", "--password", "long enough"], env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"no Voicex server has used database {db_name!r}" in result.stderr and "VOICEX_DB_NAME" in result.stderr
    with MongoClient(mongo_uri) as client:
        assert db_name not in client.list_database_names()
