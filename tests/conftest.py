"""Shared fixtures: one real database per test session, and a real aiohttp server per test.

The database is an embedded SecantusDB started here on a free loopback port, or the MongoDB named by
``VOICEX_TEST_MONGODB_URI``. Each test gets its own database name, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from voicex.platform.embedded_db import EmbeddedMongo
from voicex.platform.services import Services
from voicex.platform.settings import Settings, load_settings
from voicex.server.app import create_app
from voicex.server.runtime import Runtime

_VENDOR_KEYS = ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "GROQ_API_KEY", "ELEVENLABS_API_KEY")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the environment they set: no VOICEX_* or vendor keys from the machine."""
    for name in list(os.environ):
        if (name.startswith("VOICEX_") and name != "VOICEX_TEST_MONGODB_URI") or name in _VENDOR_KEYS:
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("VOICEX_TEST_MONGODB_URI")
    if external:
        yield external
        return
    server = EmbeddedMongo(tmp_path_factory.mktemp("mongo") / "db")
    uri = server.start()
    try:
        yield uri
    finally:
        server.stop()


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, mongo_uri: str) -> Settings:
    """Per-test settings; ``@pytest.mark.scripted_providers`` enables the scripted test providers."""
    scripted = request.node.get_closest_marker("scripted_providers") is not None
    return load_settings(
        data_dir=tmp_path / "data",
        mongodb_uri=mongo_uri,
        db_name=f"test_{uuid.uuid4().hex[:12]}",
        enable_scripted_providers=scripted,
        egress_allow="127.0.0.1",  # orgs' own providers point at loopback vendor servers (tests/loopback/)
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    runtime = await Runtime.start(settings)
    try:
        yield runtime.services
    finally:
        await runtime.services.db.client.drop_database(settings.db_name)
        await runtime.close()


@pytest.fixture
async def server(services: Services) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The real app on a fixed loopback port that is also its public URL (so Twilio signatures match)."""
    from tests.telephony import start_server

    client = await start_server(services)
    yield client
    await client.close()


AppHook = Callable[[web.Application], None]


@pytest.fixture
async def make_client(services: Services) -> AsyncIterator[Callable[..., object]]:
    """Start the real app on 127.0.0.1; ``hook`` may add test-only routes before it starts."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(hook: AppHook | None = None) -> TestClient[web.Request, web.Application]:
        app = create_app(services)
        if hook is not None:
            hook(app)
        client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: Callable[..., object]) -> TestClient[web.Request, web.Application]:
    return await make_client()  # type: ignore[no-any-return, misc]
