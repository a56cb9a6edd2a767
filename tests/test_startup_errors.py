"""A configuration or environment problem stops ``voicex`` with one message naming the setting and the fix,
exit code 2 and no traceback: run through the real command, as a user meets it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.voicex_process import clean_env, run

pytestmark = pytest.mark.slow


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def _unwritable(tmp_path: Path) -> Path:
    """A data dir this user cannot create: under a read-only directory, or for root, in sysfs."""
    if os.geteuid() == 0:
        return Path("/sys/voicex-test-data")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    return locked / "data"


def _assert_one_message(result, *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("voicex: error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_a_port_already_in_use_names_the_port_setting(busy_port: int, tmp_path: Path, mongo_uri: str) -> None:
    env = clean_env(VOICEX_MONGODB_URI=mongo_uri, VOICEX_DB_NAME=f"cli_{uuid.uuid4().hex[:8]}")
    result = run(["serve", "--host", "127.0.0.1", "--port", str(busy_port)], env, cwd=tmp_path)
    _assert_one_message(result, f"127.0.0.1:{busy_port}", "already in use", "VOICEX_PORT", "--port")


@pytest.mark.parametrize("level", ["debug", "Info"])
def test_the_log_level_is_read_in_any_case(level: str, busy_port: int, tmp_path: Path, mongo_uri: str) -> None:
    env = clean_env(VOICEX_MONGODB_URI=mongo_uri, VOICEX_DB_NAME=f"cli_{uuid.uuid4().hex[:8]}", VOICEX_LOG_LEVEL=level)
    result = run(["serve", "--host", "127.0.0.1", "--port", str(busy_port)], env, cwd=tmp_path)
    message = _assert_one_message(result, "already in use")  # it got as far as listening: the level was accepted
    assert "VOICEX_LOG_LEVEL" not in message


def test_an_unwritable_data_dir_names_the_setting(tmp_path: Path) -> None:
    data_dir = _unwritable(tmp_path)
    result = run(["serve"], clean_env(VOICEX_DATA_DIR=str(data_dir)), cwd=tmp_path)
    _assert_one_message(result, f"cannot use the data directory {data_dir}", "Set VOICEX_DATA_DIR")
    assert not data_dir.exists()


def test_a_data_dir_under_a_file_says_which_file(tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a directory")
    result = run(["serve"], clean_env(VOICEX_DATA_DIR=str(blocker / "data")), cwd=tmp_path)
    _assert_one_message(result, f"{blocker} is a file, not a directory", "Set VOICEX_DATA_DIR")


def test_an_empty_mongodb_uri_is_an_error_not_a_private_embedded_database(tmp_path: Path) -> None:
    result = run(["serve"], clean_env(VOICEX_MONGODB_URI=""), cwd=tmp_path)
    _assert_one_message(result, "VOICEX_MONGODB_URI", "set but empty", "unset it")
    assert not (tmp_path / "data" / "db").exists()


def test_a_bad_setting_names_the_variable(tmp_path: Path) -> None:
    result = run(["serve"], clean_env(VOICEX_PORT="eighty"), cwd=tmp_path, timeout=30)
    _assert_one_message(result, "VOICEX_PORT")


def test_help_documents_the_exit_codes() -> None:
    usage = run(["--help"], clean_env())
    assert usage.returncode == 0
    assert "exit status" in usage.stdout and "2    a configuration or environment error" in usage.stdout
