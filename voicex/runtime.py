"""Start and stop the server's services in order: secrets, catalog, database (embedded if needed), indexes."""

from __future__ import annotations

import asyncio
import logging

from voicex.agent_migration import migrate
from voicex.catalog import load_catalog
from voicex.context import Services
from voicex.db import Database
from voicex.embedded_db import EmbeddedMongo
from voicex.errors import VoicexError
from voicex.global_providers import sync_global_providers
from voicex.metrics import Metrics
from voicex.settings import Settings, ensure_secrets

log = logging.getLogger(__name__)


class Runtime:
    """Owns the lifecycles behind one server process (or one CLI command)."""

    def __init__(self, services: Services, embedded: EmbeddedMongo | None) -> None:
        self.services = services
        self.embedded = embedded

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        settings = ensure_secrets(settings)
        enabled = frozenset({"enable_scripted_providers"} if settings.enable_scripted_providers else ())
        catalog = load_catalog(settings.config_dir, enabled)
        embedded: EmbeddedMongo | None = None
        uri = settings.mongodb_uri
        if uri is None:
            embedded = EmbeddedMongo(settings.embedded_db_dir, start_timeout=settings.embedded_db_start_timeout_sec)
            uri = await asyncio.to_thread(embedded.start)
        db = Database(uri, settings.db_name)
        try:
            await db.ping(timeout=10.0)
            await db.ensure_indexes()
            await sync_global_providers(db, catalog, settings)
            await migrate(db, catalog)
        except Exception as exc:
            await db.close()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
            raise VoicexError(f"cannot use the database at {_redact(uri)}: {exc}") from exc
        if not settings.twilio_validate_signature:
            log.warning(
                "VOICEX_TWILIO_VALIDATE_SIGNATURE=false: Twilio webhook and stream signatures are NOT checked;"
                " anyone who can reach this server can place calls. Use this for local development only."
            )
        return cls(Services(settings=settings, catalog=catalog, db=db, metrics=Metrics()), embedded)

    async def close(self) -> None:
        await self.services.db.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)


def _redact(uri: str) -> str:
    """Hide a password in a MongoDB URI before it reaches a message."""
    if "@" not in uri or "://" not in uri:
        return uri
    scheme, rest = uri.split("://", 1)
    credentials, host = rest.split("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
