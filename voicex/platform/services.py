"""What every request handler may use: settings, catalog, database and metrics, held by the app.

The container sits with the foundations so every floor can reach it; the catalog it holds is built a floor up
(voicex/catalog/), so it is named for the type checker only and no import runs back up at run time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from voicex.catalog.config import Catalog
from voicex.platform.crypto import SecretBox
from voicex.platform.live_calls import LiveCalls
from voicex.platform.metrics import Metrics
from voicex.platform.settings import Settings
from voicex.store.db import Database
from voicex.store.leases import LeaseRenewer


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    db: Database
    metrics: Metrics
    leases: LeaseRenewer = field(default_factory=LeaseRenewer)  # the live calls' leases, renewed by the janitor
    live: LiveCalls = field(default_factory=LiveCalls)  # the running calls and the drain state

    @property
    def jwt_secret(self) -> str:
        """Signs sessions and stream tokens; always present once the runtime started (``ensure_secrets``)."""
        return _present(self.settings.jwt_secret, "VOICEX_JWT_SECRET")

    @property
    def box(self) -> SecretBox:
        """Encrypts stored credentials and Twilio tokens with VOICEX_ENCRYPTION_KEY (always present once started)."""
        return _box(_present(self.settings.encryption_key, "VOICEX_ENCRYPTION_KEY"))


def _present(value: str | None, variable: str) -> str:
    if value is None:  # a Services built without Runtime.start: a bug, not a configuration error
        raise RuntimeError(f"{variable} was not loaded: build Services through voicex.server.runtime")
    return value


@functools.lru_cache(maxsize=4)
def _box(key: str) -> SecretBox:
    return SecretBox(key)


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
