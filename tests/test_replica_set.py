"""Scale-out on a MongoDB replica set (docs/deployment.md, "Several machines"): what must hold there.

The whole suite runs against any MongoDB named by ``VOICEX_TEST_MONGODB_URI`` (tests/conftest.py); this file adds
the checks that only mean something on a replica set, and is skipped when the URI names none (the embedded
database is a standalone server). The concerns themselves are checked everywhere.
"""

from __future__ import annotations

import os

import pytest

from tests.test_call_runner import test_a_whole_call_runs_over_an_in_memory_transport as whole_call
from tests.test_drain import test_calls_in_flight_when_a_drain_begins_finish_normally as drain_call

pytestmark = pytest.mark.scripted_providers


async def test_writes_wait_for_a_majority_reads_see_only_majority_writes_and_both_retry(services) -> None:
    client = services.db.client
    assert client.write_concern.document == {"w": "majority"}
    assert client.read_concern.document == {"level": "majority"}
    assert client.options.retry_writes and client.options.retry_reads


async def _replica_set(services) -> str:
    if not os.environ.get("VOICEX_TEST_MONGODB_URI"):
        pytest.skip("VOICEX_TEST_MONGODB_URI names no MongoDB (the embedded one is a standalone server)")
    hello = await services.db.client.admin.command("hello")
    if "setName" not in hello:
        pytest.skip("VOICEX_TEST_MONGODB_URI is not a replica set")
    return hello["setName"]


async def test_a_whole_call_on_a_replica_set(server, services) -> None:
    await _replica_set(services)
    await whole_call(server, services)


async def test_a_drain_on_a_replica_set(server, services) -> None:
    await _replica_set(services)
    await drain_call(server, services)
