"""The database layer: idempotent indexes, the embedded server's durability, readiness across an outage."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pymongo.errors import DuplicateKeyError

from voicex.platform.embedded_db import EmbeddedMongo
from voicex.platform.errors import EmbeddedDatabaseError
from voicex.store.db import Database
from voicex.store.indexes import INDEXES, ensure_indexes


async def test_index_creation_is_idempotent_and_enforces_uniqueness(services) -> None:
    db = services.db  # Runtime.start already created the indexes once
    before = {spec.collection: await db.db[spec.collection].index_information() for spec in INDEXES}
    await ensure_indexes(db)
    await ensure_indexes(db)
    after = {spec.collection: await db.db[spec.collection].index_information() for spec in INDEXES}
    assert before == after
    for spec in INDEXES:
        assert spec.name in after[spec.collection]
    await db.users.insert_one({"email": "a@example.com"})
    with pytest.raises(DuplicateKeyError):
        await db.users.insert_one({"email": "a@example.com"})
    await db.providers.insert_one({"orgId": "o1", "name": "Mine"})
    await db.providers.insert_one({"orgId": "o2", "name": "Mine"})  # same name, other org: fine
    with pytest.raises(DuplicateKeyError):
        await db.providers.insert_one({"orgId": "o1", "name": "Mine"})


@pytest.mark.slow
async def test_embedded_data_survives_a_restart(tmp_path: Path) -> None:
    server = EmbeddedMongo(tmp_path / "db")
    uri = server.start()
    db = Database(uri, "durable")
    await db.organizations.insert_one({"_id": "org-1", "name": "Acme"})
    await db.close()
    server.stop()
    assert not server.running

    restarted = EmbeddedMongo(tmp_path / "db")
    db = Database(restarted.start(), "durable")
    try:
        assert await db.organizations.find_one({"_id": "org-1"}) == {"_id": "org-1", "name": "Acme"}
    finally:
        await db.close()
        restarted.stop()


@pytest.mark.slow
async def test_a_second_command_attaches_to_the_running_embedded_server(tmp_path: Path) -> None:
    owner = EmbeddedMongo(tmp_path / "db")
    owner.start()
    try:
        other = EmbeddedMongo(tmp_path / "db")
        assert other.start() == owner.uri
        assert other.attached
        other.stop()  # not its process: stopping it leaves the owner running
        assert owner.running
    finally:
        owner.stop()


@pytest.mark.slow
async def test_ready_goes_503_while_the_database_is_down_and_recovers(tmp_path: Path, make_client, services) -> None:
    server = EmbeddedMongo(tmp_path / "outage-db")
    server.start()
    shared_db, services.db = services.db, Database(server.uri, "outage", server_selection_timeout_ms=1000)
    client = await make_client()
    try:
        response = await client.get("/api/ready")
        assert response.status == 200

        server.stop()
        response = await client.get("/api/ready")
        assert response.status == 503
        body = await response.json()
        assert body["status"] == "not ready"
        assert body["checks"]["database"] != "ok"
        assert "database" in body["error"]

        server.start()  # same port, same data: the app's client reconnects by itself
        response = await client.get("/api/ready")
        assert response.status == 200
        assert (await response.json())["checks"] == {"database": "ok", "calls": "ok"}
    finally:
        await services.db.close()
        services.db = shared_db
        server.stop()


def test_unusable_data_dir_says_why_and_how_to_use_a_real_mongodb(tmp_path: Path) -> None:
    blocker = tmp_path / "db"
    blocker.write_text("a file where the data directory should be")
    with pytest.raises(EmbeddedDatabaseError) as error:
        EmbeddedMongo(blocker).start()
    assert "VOICEX_DATA_DIR" in str(error.value) and "VOICEX_MONGODB_URI" in str(error.value)


def test_server_that_dies_while_starting_reports_its_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = EmbeddedMongo(tmp_path / "db", port=taken.getsockname()[1], start_timeout=20)
        with pytest.raises(EmbeddedDatabaseError) as error:
            server.start()
    message = str(error.value)
    assert "exited with code" in message and "VOICEX_MONGODB_URI" in message
    assert "in use" in message.lower() or "address" in message.lower()
    assert not server.running


# The queries that run per call or per janitor pass, as (collection, the fields their filter pins to one value):
# each must be served by an index that starts with one of those fields, or it scans a collection that only grows
# (3,000 calls: 77 ms for the janitor's usage check, 65 ms for each slot release, in the embedded DB).
HOT_QUERIES = [
    ("calls", {"usagePending"}),  # janitor: usage left uncounted by a crash
    ("calls", {"status"}),  # janitor: expired leases; a dead process's calls
    ("call_slots", {"callId"}),  # slot release and renewal
    ("call_slots", {"orgId"}),  # slot claim
    ("api_keys", {"keyHash"}),  # every webhook and API request
    ("usage_daily", {"orgId"}),  # usage at each call's end, monthly limit at admission
]


@pytest.mark.parametrize(("collection", "pinned"), HOT_QUERIES, ids=[f"{c}-{'+'.join(p)}" for c, p in HOT_QUERIES])
def test_every_per_call_and_janitor_query_has_an_index(collection: str, pinned: set[str]) -> None:
    leading = {spec.keys[0][0] for spec in INDEXES if spec.collection == collection}
    assert leading & pinned, f"{collection} has no index starting with {sorted(pinned)}"


async def test_an_upgraded_database_loses_the_one_document_per_day_usage_index(services) -> None:
    """A database made by an earlier version has a unique (org, date) usage index; it would refuse a day's
    second shard, so ensure_indexes drops it and a day can hold its shards."""
    usage = services.db.usage_daily
    await usage.drop_indexes()
    await usage.create_index([("orgId", 1), ("date", 1)], name="org_date_unique", unique=True)
    await ensure_indexes(services.db)
    assert "org_date_unique" not in await usage.index_information()
    await usage.insert_one({"orgId": "o1", "date": "2026-12-04", "shard": 1, "calls": 1})
    await usage.insert_one({"orgId": "o1", "date": "2026-12-04", "shard": 2, "calls": 1})
    with pytest.raises(DuplicateKeyError):
        await usage.insert_one({"orgId": "o1", "date": "2026-12-04", "shard": 2, "calls": 1})
