"""providerKey → adapter factory. Modules load lazily, so an uninstalled extra fails only when used.

Each adapter module exposes ``create(category, model, credentials, settings)``; the server passes the
provider document's decrypted credentials (or the global provider's environment keys) and settings. Adapters
that connect where a provider's settings point (``baseUrl``) also take ``egress``: the outbound policy for a
tenant's own provider (providers/egress.py); the others connect to fixed hosts or nowhere.
"""

from __future__ import annotations

import importlib
from typing import Any

from providers.base import LLMProvider, ProviderError, STTProvider, TTSProvider
from providers.egress import EgressPolicy

Provider = STTProvider | LLMProvider | TTSProvider

MODULES: dict[tuple[str, str], str] = {
    ("deepgram", "stt"): "providers.deepgram_stt",
    ("openai", "llm"): "providers.openai_llm",
    ("ollama", "llm"): "providers.openai_llm",
    ("groq", "llm"): "providers.groq_llm",
    ("openai", "tts"): "providers.openai_tts",
    ("elevenlabs", "tts"): "providers.elevenlabs_tts",
    ("edge", "tts"): "providers.edge_tts",
    ("local", "stt"): "providers.local",
    ("local", "llm"): "providers.local",
    ("local", "tts"): "providers.local",
    ("scripted", "stt"): "providers.scripted",
    ("scripted", "llm"): "providers.scripted",
    ("scripted", "tts"): "providers.scripted",
}
# The modules whose destination a provider's settings choose; they take ``egress``.
POLICED = frozenset(
    {
        "providers.deepgram_stt",
        "providers.openai_llm",
        "providers.groq_llm",
        "providers.openai_tts",
        "providers.elevenlabs_tts",
    }
)


def build(
    provider_key: str,
    category: str,
    model: str,
    credentials: dict[str, Any],
    settings: dict[str, Any],
    egress: EgressPolicy | None = None,
) -> Provider:
    """A ready adapter, or ProviderError saying why not (unknown type, extra not installed, bad config).

    ``egress`` None: an operator's (global) provider, trusted; else every connection obeys the policy.
    """
    module_name = MODULES.get((provider_key, category))
    if module_name is None:
        raise ProviderError(provider_key, f"no {category} adapter for provider type {provider_key!r}", retryable=False)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = " (install the 'local' extra: pip install 'voicex[local]')" if provider_key == "local" else ""
        raise ProviderError(provider_key, f"adapter unavailable: {exc}{hint}", retryable=False) from exc
    try:
        if egress is not None and module_name in POLICED:
            return module.create(category, model, credentials, settings, egress)  # type: ignore[no-any-return]
        return module.create(category, model, credentials, settings)  # type: ignore[no-any-return]
    except ProviderError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise ProviderError(provider_key, f"invalid configuration: {exc}", retryable=False) from exc
