"""Load the embedded models at start only when an active agent uses them.

Loaded, Whisper, SmolLM2 and Piper keep ~600 MB resident; a server whose agents all use hosted providers should
not pay that. Without a warm-up they load on the first call that needs them (providers/local/models.py), which
costs that call a 1–2 s silence once, so a server that has local agents loads them right after it starts.
"""

from __future__ import annotations

import asyncio
import logging

from voicex.platform.settings import Settings
from voicex.store.db import Database

log = logging.getLogger(__name__)

LOCAL_PROVIDER_KEY = "local"  # providers/local PROVIDER
SLOTS = ("stt", "llm", "tts")


async def local_models_in_use(db: Database) -> bool:
    """Whether an active agent has an active ``local`` provider in a slot or among its fallbacks."""
    ids = [
        doc["_id"] async for doc in db.providers.find({"providerKey": LOCAL_PROVIDER_KEY, "active": True}, {"_id": 1})
    ]
    if not ids:
        return False
    refs = [{f"{slot}ProviderId": {"$in": ids}} for slot in SLOTS]
    refs += [{f"fallbacks.{slot}.providerId": {"$in": ids}} for slot in SLOTS]
    return await db.agents.find_one({"active": {"$ne": False}, "$or": refs}, {"_id": 1}) is not None


def warm_local_models(settings: Settings, db: Database) -> asyncio.Task[None] | None:
    """Load the embedded models now, in the background, if an active agent uses them (``VOICEX_WARM_LOCAL_MODELS``
    false: never). They load in the shared worker pool, off the event loop, so the server answers health checks
    and other calls meanwhile. A failure is logged; the models then load on first use."""
    import providers.local as local_stack

    if not settings.warm_local_models or not local_stack.installed():
        return None
    loop = asyncio.get_running_loop()

    async def warm() -> None:
        started = loop.time()
        try:
            if not await local_models_in_use(db):
                log.info("no active agent uses the embedded models: they load on the first call that needs them")
                return
            await local_stack.warm_up()
        except Exception:
            log.exception("warming the embedded models failed; they will load on first use")
        else:
            log.info("embedded models ready", extra={"ms": round((loop.time() - started) * 1000)})

    return asyncio.create_task(warm(), name="warm-local-models")
