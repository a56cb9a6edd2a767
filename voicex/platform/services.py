"""What every request handler may use: settings, catalog, database and metrics, held by the app.

The container sits with the foundations so every floor can reach it; the catalog it holds is built a floor up
(voicex/catalog/), so it is named for the type checker only and no import runs back up at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from voicex.catalog.config import Catalog
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


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
