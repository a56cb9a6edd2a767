"""Streaming chat on an embedded GGUF model (SmolLM2-135M-Instruct by default) through llama-cpp-python.

Replies are for the phone: at most ``max_tokens`` tokens (80 by default, whatever the agent asks for) and
they end at a blank line. Generation runs in a pool worker and streams tokens back as they are sampled;
leaving the iteration (barge-in) stops it at the next token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from threading import Event
from typing import Any

from providers.base import ChatMessage, LLMChunk, LLMOptions, LLMProvider, ProviderError, Usage
from providers.local import models
from providers.local.engines import Generation
from providers.local.pool import PROVIDER, WorkerPool, get_pool, run, stream

DEFAULT_MAX_TOKENS = 80
_MAX_YIELD_SEC = 0.5  # per token: a stuck TTS or STT job must not stall the reply for long


class LocalLlamaLLM(LLMProvider):
    name = "local"
    speculative = False  # on 2 cores a held answer measurably delays Whisper's final (docs/performance.md)

    def __init__(
        self,
        *,
        model_path: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        context_size: int = 2048,
        contexts: int = 2,
        pool: WorkerPool | None = None,
    ) -> None:
        if model_path is not None and not Path(model_path).is_file():
            raise ProviderError(PROVIDER, f"GGUF model not found: {model_path}", retryable=False)
        self.model_path = model_path
        self.max_tokens = max_tokens
        self.context_size = context_size
        self.contexts = contexts
        self.pool = pool or get_pool()
        self._lane = models.llm_lane(model_path, context_size=context_size, slots=contexts)

    def _engine(self) -> Any:
        return models.llama(self.model_path, context_size=self.context_size, slots=self.contexts)

    async def warm_up(self) -> None:
        """Load the model now (in a worker) so the first caller does not wait for it."""
        await run(self.pool, self._lane, self._engine, "loading llama.cpp")

    async def prefill(self, messages: list[ChatMessage]) -> None:
        """Evaluate the conversation so far (e.g. the system prompt, while the greeting plays) into a llama.cpp
        context, so the first reply only evaluates the caller's words: on 2 cores a 200-token system prompt
        costs about a second. Optional: the engine may call it when a call starts."""
        chat = [{"role": m.role, "content": m.content} for m in messages]
        await run(self.pool, self._lane, lambda: self._engine().prefill(chat), "llama.cpp prefill")

    async def stream_chat(self, messages: list[ChatMessage], options: LLMOptions) -> AsyncIterator[LLMChunk]:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        max_tokens = max(1, min(options.max_tokens, self.max_tokens))
        temperature = options.temperature

        step_aside = partial(self.pool.yield_to_urgent, _MAX_YIELD_SEC)  # between tokens: Whisper/Piper go first

        def produce(emit: Callable[[Any], None], stop: Event) -> None:
            engine = self._engine()
            generation = engine.generate(
                chat, max_tokens=max_tokens, temperature=temperature, stop=stop, emit=emit, pause=step_aside
            )
            emit(generation)

        async for item in stream(self.pool, self._lane, produce, "llama.cpp"):
            if isinstance(item, Generation):
                yield LLMChunk(usage=Usage(item.prompt_tokens, item.completion_tokens))
            else:
                yield LLMChunk(text=item)
