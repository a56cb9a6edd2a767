"""Start and stop a process's services in order: secrets, catalog, database (embedded if needed), shared state."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from voicex.agents.migration import migrate
from voicex.catalog.config import load_catalog
from voicex.catalog.global_providers import sync_global_providers
from voicex.platform.embedded_db import EmbeddedMongo
from voicex.platform.errors import SetupError, VoicexError
from voicex.platform.metrics import Metrics
from voicex.platform.services import Services
from voicex.platform.settings import Settings, ensure_secrets
from voicex.server.shared_secrets import check_shared_secrets, generated_secrets
from voicex.store.db import Database
from voicex.store.indexes import ensure_indexes

log = logging.getLogger(__name__)


Role = Literal["server", "admin"]


class Runtime:
    """Owns the lifecycles behind one server process (or one CLI command)."""

    def __init__(self, services: Services, embedded: EmbeddedMongo | None) -> None:
        self.services = services
        self.embedded = embedded

    @classmethod
    async def start(cls, settings: Settings, role: Role = "server") -> Runtime:
        """Open everything a process needs. A ``server`` (serve, demo) brings the shared database up to date:
        indexes, the secrets record, its catalog's global providers, the agent migration.

        An ``admin`` command runs beside the servers and changes none of that: it generates no secrets, never
        creates a database (an empty data dir or database means it is pointed at the wrong one), and writes only
        what it was asked to.
        """
        generated = generated_secrets(settings)
        if role == "server":
            settings = ensure_secrets(settings)
        enabled = frozenset({"enable_scripted_providers"} if settings.enable_scripted_providers else ())
        catalog = load_catalog(settings.config_dir, enabled)
        embedded: EmbeddedMongo | None = None
        uri = settings.mongodb_uri
        if uri is None:
            embedded = EmbeddedMongo(settings.embedded_db_dir, start_timeout=settings.embedded_db_start_timeout_sec)
            if role == "admin" and not embedded.has_data():
                raise SetupError(no_embedded_database(settings))
            uri = await asyncio.to_thread(embedded.start)
        db: Database | None = None
        try:
            db = Database(uri, settings.db_name)
            await db.ping(timeout=10.0)
            if role == "admin":
                if not await db.db.list_collection_names():
                    raise SetupError(unused_database(settings, _redact(uri)))
            else:
                await ensure_indexes(db)
                await check_shared_secrets(db, settings, generated)
                await sync_global_providers(db, catalog, settings)
                await migrate(db, catalog)
        except BaseException as exc:
            if db is not None:
                await db.close()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
            if isinstance(exc, VoicexError) or not isinstance(exc, Exception):
                raise
            raise SetupError(f"cannot use the database at {_redact(uri)}: {exc}") from exc
        if role == "server" and not settings.twilio_validate_signature:
            log.warning(
                "VOICEX_TWILIO_VALIDATE_SIGNATURE=false: Twilio webhook and stream signatures are NOT checked;"
                " anyone who can reach this server can place calls. Use this for local development only."
            )
        return cls(Services(settings=settings, catalog=catalog, db=db, metrics=Metrics()), embedded)

    async def close(self) -> None:
        await self.services.db.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)


def no_embedded_database(settings: Settings) -> str:
    """An admin command found no embedded database where it looked: say where, and how to point it right."""
    return (
        f"no Voicex database in {settings.data_dir.absolute()} (VOICEX_DATA_DIR): no server is running on it and"
        " it holds no data, and an admin command does not create one. Run it from the folder where you run"
        " `voicex serve`, or set VOICEX_DATA_DIR (or VOICEX_MONGODB_URI and VOICEX_DB_NAME) as the server has them."
    )


def unused_database(settings: Settings, uri: str) -> str:
    """An admin command reached a database no server has used: most likely another name or server than intended."""
    return (
        f"no Voicex server has used database {settings.db_name!r} at {uri} (it is empty), and an admin command"
        " does not create one. Set VOICEX_MONGODB_URI and VOICEX_DB_NAME (or, for the embedded database,"
        " VOICEX_DATA_DIR) as the server has them, or start `voicex serve` on it first."
    )


def _redact(uri: str) -> str:
    """Hide a password in a MongoDB URI before it reaches a message."""
    if "@" not in uri or "://" not in uri:
        return uri
    scheme, rest = uri.split("://", 1)
    credentials, host = rest.split("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
