"""Processes that share a database must share its secrets: a second ``voicex serve`` with its own refuses to start
instead of answering 401 and 500 at run time."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from pymongo import MongoClient

from tests.voicex_process import clean_env, http, run, start_serve
from voicex.platform.settings import load_settings
from voicex.server.shared_secrets import differing, new_record

JWT = "j" * 48
KEY = "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleS0="  # 32 bytes, url-safe base64


def test_the_record_holds_fingerprints_that_tell_secrets_apart_but_not_the_secrets() -> None:
    mine = load_settings(jwt_secret=JWT, encryption_key=KEY)
    record = new_record(mine, "salt", dt.datetime.now(dt.UTC))
    assert JWT not in str(record) and KEY not in str(record)
    assert differing(record, mine) == []
    assert differing(record, mine.model_copy(update={"jwt_secret": "k" * 48})) == ["VOICEX_JWT_SECRET"]
    other_key = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDE="
    assert differing(record, mine.model_copy(update={"encryption_key": other_key})) == ["VOICEX_ENCRYPTION_KEY"]
    assert new_record(mine, "other salt", dt.datetime.now(dt.UTC))["jwtSecret"] != record["jwtSecret"]


@pytest.mark.slow
def test_a_second_server_with_its_own_secrets_refuses_to_start_and_one_with_the_same_secrets_works(
    tmp_path: Path, mongo_uri: str
) -> None:
    db_name = f"secrets_{uuid.uuid4().hex[:8]}"
    shared = {"VOICEX_MONGODB_URI": mongo_uri, "VOICEX_DB_NAME": db_name, "VOICEX_WARM_LOCAL_MODELS": "false"}
    first = start_serve(clean_env(**shared, VOICEX_DATA_DIR=str(tmp_path / "a")), tmp_path)
    second = None
    try:
        # Its own data dir, so its own generated secrets: what the second process did.
        own = run(["serve", "--host", "127.0.0.1"], clean_env(**shared, VOICEX_DATA_DIR=str(tmp_path / "b")), tmp_path)
        assert own.returncode == 2, own.stderr
        assert "Traceback" not in own.stderr
        message = next(line for line in own.stderr.splitlines() if line.startswith("voicex: error: "))
        assert "VOICEX_JWT_SECRET and VOICEX_ENCRYPTION_KEY differ" in message
        assert f"generated its own in {tmp_path / 'b' / 'secrets'}" in message
        assert "Set the same VOICEX_JWT_SECRET and VOICEX_ENCRYPTION_KEY on every process" in message

        secrets = {
            "VOICEX_JWT_SECRET": (tmp_path / "a" / "secrets" / "jwt_secret").read_text().strip(),
            "VOICEX_ENCRYPTION_KEY": (tmp_path / "a" / "secrets" / "encryption_key").read_text().strip(),
        }
        second = start_serve(clean_env(**shared, **secrets, VOICEX_DATA_DIR=str(tmp_path / "b")), tmp_path)
        signup = {"name": "Ann", "email": "ann@example.com", "password": "long enough", "orgName": "Ann's"}
        status, body = http("POST", f"{first.url}/api/auth/signup", signup)
        assert status == 201, body
        me = http("GET", f"{second.url}/api/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
        assert me[0] == 200, me
        with MongoClient(mongo_uri) as client:
            record = client[db_name]["platform"].find_one({"_id": "sharedSecrets"})
        assert record is not None and not any(secret in str(record) for secret in secrets.values())
    finally:
        for server in (first, second):
            if server is not None:
                server.stop()
        with MongoClient(mongo_uri) as client:
            client.drop_database(db_name)
