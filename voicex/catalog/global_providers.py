"""Global providers: one read-only provider document per global provider type and category, shared by all orgs.

They are written from ``config/providers.yaml`` at every start, keyed by ``{orgId: None, providerKey, category}``
so their ids stay stable across restarts and agents can keep referencing them. A start only adds and updates;
removing what left the catalog is an explicit admin command. Their credentials are never
stored: they come from the environment (``settings.openai_api_key`` ...) when a call uses them.
"""

from __future__ import annotations

import datetime as dt
import logging

from voicex.catalog.config import Catalog, Category, ProviderType, catalog_models
from voicex.platform.settings import Settings
from voicex.store.agents import count_agents_using
from voicex.store.db import Database
from voicex.store.providers import (
    ProviderDoc,
    deactivate_providers,
    globals_by_type,
    insert_global_providers,
    list_globals_except,
    save_global_provider,
)

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


def credentials_set(provider: ProviderDoc, catalog: Catalog, settings: Settings) -> bool:
    """Whether the provider can authenticate: env vars for globals, stored credentials for an org's own."""
    provider_type = catalog.provider_types.get(provider.get("providerKey", ""))
    if provider_type is None:
        return False
    if provider.get("orgId") is None:
        return global_credentials(provider_type, settings) is not None
    return not provider_type.credentials or bool(provider.get("credentials"))


def _wanted(provider_type: ProviderType, category: Category) -> ProviderDoc:
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
    existing = await globals_by_type(db)
    missing: list[ProviderDoc] = []
    changed: list[ProviderDoc] = []
    for provider_type, category in catalog_globals(catalog):
        wanted = _wanted(provider_type, category)
        current = existing.get((provider_type.key, category))
        if current is None:
            missing.append({**wanted, "providerKey": provider_type.key, "category": category})
        elif any(current.get(field) != value for field, value in wanted.items()):
            changed.append({**wanted, "providerKey": provider_type.key, "category": category})
    changed += await insert_global_providers(db, missing, now)  # raced by another start: update those instead
    for doc in changed:
        fields = {field: value for field, value in doc.items() if field not in ("providerKey", "category")}
        if not await save_global_provider(db, doc["providerKey"], doc["category"], fields, now):  # type: ignore[arg-type]
            log.warning("global provider %r clashes with another global's name", doc["name"])


async def prune_global_providers(db: Database, catalog: Catalog, *, dry_run: bool = False) -> list[ProviderDoc]:
    """Deactivate the active globals this catalog no longer has (not deleted: agents may still reference them);
    returns them. ``dry_run`` only lists them."""
    kept = [(provider_type.key, category) for provider_type, category in catalog_globals(catalog)]
    stale = await list_globals_except(db, kept)
    if stale and not dry_run:
        await deactivate_providers(db, [doc["_id"] for doc in stale], dt.datetime.now(dt.UTC))
        log.info("deactivated %d global providers no longer in the catalog", len(stale))
    return stale


async def agents_using(db: Database, providers: list[ProviderDoc]) -> int:
    """How many agents name one of ``providers`` in a slot or a fallback (they pause when it is deactivated)."""
    return await count_agents_using(db, [doc["_id"] for doc in providers])
