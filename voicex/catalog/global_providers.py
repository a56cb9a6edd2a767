"""Global providers: one read-only provider document per global provider type and category, shared by all orgs.

They are written from ``config/providers.yaml`` at every start, keyed by ``{orgId: None, providerKey, category}``
so their ids stay stable across restarts and agents can keep referencing them. A start only adds and updates;
removing what left the catalog is an explicit admin command. Their credentials are never
stored: they come from the environment (``settings.openai_api_key`` ...) when a call uses them.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pymongo.errors import DuplicateKeyError

from voicex.catalog.config import Catalog, Category, ProviderType, catalog_models
from voicex.platform.settings import Settings
from voicex.store.db import Database, Document

log = logging.getLogger(__name__)


def global_provider_name(provider_type: ProviderType, category: Category) -> str:
    """``"OpenAI LLM"``, ``"Deepgram STT"`` (``"Microsoft Edge TTS"`` stays as it is): unique among globals."""
    suffix = category.upper()
    return provider_type.name if provider_type.name.endswith(f" {suffix}") else f"{provider_type.name} {suffix}"


def global_credentials(provider_type: ProviderType, settings: Settings) -> dict[str, str] | None:
    """The credentials a global provider uses, read from the settings named by each field's ``env``.

    None when any field is missing, so a caller can refuse instead of sending a half-filled request.
    """
    values: dict[str, str] = {}
    for credential in provider_type.credentials:
        value = getattr(settings, credential.env.lower(), None) if credential.env else None
        if not value:
            return None
        values[credential.key] = value
    return values


def credentials_set(provider: Document, catalog: Catalog, settings: Settings) -> bool:
    """Whether the provider can authenticate: env vars for globals, stored credentials for an org's own."""
    provider_type = catalog.provider_types.get(provider.get("providerKey", ""))
    if provider_type is None:
        return False
    if provider.get("orgId") is None:
        return global_credentials(provider_type, settings) is not None
    return not provider_type.credentials or bool(provider.get("credentials"))


def _wanted(provider_type: ProviderType, category: Category) -> dict[str, Any]:
    return {
        "name": global_provider_name(provider_type, category),
        "models": catalog_models(provider_type, category),
        "settings": provider_type.setting_defaults(category),
        "active": True,
        "credentials": None,
    }


def catalog_globals(catalog: Catalog) -> list[tuple[ProviderType, Category]]:
    """The global providers this process's catalog offers, one per provider type and category."""
    return [
        (provider_type, category)
        for provider_type in catalog.providers_file.providers
        if provider_type.global_
        for category in provider_type.categories
    ]


async def sync_global_providers(db: Database, catalog: Catalog, settings: Settings) -> None:
    """Create or update the global providers this process's catalog has; a no-op when they already match.

    Additive on purpose: processes sharing a database may run with different catalogs (one with
    ``VOICEX_ENABLE_SCRIPTED_PROVIDERS``, one without), and a start must never deactivate what another offers:
    that pauses its agents. Globals that left every catalog are deactivated only on request
    (:func:`prune_global_providers`, ``voicex admin prune-providers``).

    Safe to run from several processes at once: the unique (orgId, name) index turns a lost insert race
    into a DuplicateKeyError, after which the winner's document is simply updated.
    """
    now = dt.datetime.now(dt.UTC)
    for provider_type, category in catalog_globals(catalog):
        key = {"orgId": None, "providerKey": provider_type.key, "category": category}
        wanted = _wanted(provider_type, category)
        current = await db.providers.find_one(key)
        if current is not None and all(current.get(field) == value for field, value in wanted.items()):
            continue
        update = {"$set": {**wanted, "updatedAt": now}, "$setOnInsert": {"createdAt": now}}
        try:
            await db.providers.update_one(key, update, upsert=True)
        except DuplicateKeyError:
            result = await db.providers.update_one(key, {"$set": {**wanted, "updatedAt": now}})
            if result.matched_count == 0:
                log.warning("global provider %r clashes with another global's name", wanted["name"])


async def prune_global_providers(db: Database, catalog: Catalog, *, dry_run: bool = False) -> list[Document]:
    """Deactivate the active globals this catalog no longer has (not deleted: agents may still reference them);
    returns them. ``dry_run`` only lists them."""
    kept = [
        {"providerKey": provider_type.key, "category": category} for provider_type, category in catalog_globals(catalog)
    ]
    stale_filter = {"orgId": None, "active": True, "$nor": kept} if kept else {"orgId": None, "active": True}
    stale = [doc async for doc in db.providers.find(stale_filter).sort("name", 1)]
    if stale and not dry_run:
        now = dt.datetime.now(dt.UTC)
        ids = [doc["_id"] for doc in stale]
        await db.providers.update_many({"_id": {"$in": ids}}, {"$set": {"active": False, "updatedAt": now}})
        log.info("deactivated %d global providers no longer in the catalog", len(stale))
    return stale


async def agents_using(db: Database, providers: list[Document]) -> int:
    """How many agents name one of ``providers`` in a slot or a fallback (they pause when it is deactivated)."""
    ids = [doc["_id"] for doc in providers]
    if not ids:
        return 0
    slots = ("stt", "llm", "tts")
    refs = [{f"{slot}ProviderId": {"$in": ids}} for slot in slots]
    refs += [{f"fallbacks.{slot}.providerId": {"$in": ids}} for slot in slots]
    return await db.agents.count_documents({"$or": refs})
