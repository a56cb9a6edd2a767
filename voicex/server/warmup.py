"""Load the embedded models at start only when an active agent uses them.

Loaded, Whisper, SmolLM2 and Piper keep ~600 MB resident; a server whose agents all use hosted providers should
not pay that. Without a warm-up they load on the first call that needs them (providers/local/models.py), which
costs that call a 1–2 s silence once, so a server that has local agents loads them right after it starts.
"""

from __future__ import annotations

import asyncio
import logging

from voicex.platform.settings import Settings
from voicex.store.agents import any_active_agent_using
from voicex.store.db import Database
from voicex.store.providers import active_ids_of_type

log = logging.getLogger(__name__)

LOCAL_PROVIDER_KEY = "local"  # providers/local PROVIDER


async def local_models_in_use(db: Database) -> bool:
    """Whether an active agent has an active ``local`` provider in a slot or among its fallbacks."""
    return await any_active_agent_using(db, await active_ids_of_type(db, LOCAL_PROVIDER_KEY))


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
