"""The blocking inference code of the embedded stack: one class per library, called only from pool workers.

Each engine owns its model(s) and is not re-entrant; the pool's lanes make sure a model serves no more jobs
at once than it can (one for whisper and Piper, one per llama.cpp context).
"""

from __future__ import annotations

import json
import math
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from providers.base import ProviderError
from providers.local.pool import PROVIDER

SAMPLE_RATE = 16000
_MIN_WINDOW_SEC = 10  # shortest encoder window: shorter ones start to drop or repeat words
_MAX_WINDOW_SEC = 30  # whisper's native window
_NO_SPEECH_PROB = 0.6  # whisper's own rule: no-speech above this *and* a low log-prob means "nothing said"
_LOW_LOGPROB = -1.0
_MAX_COMPRESSION = 2.4  # whisper's repetition-loop detector


class WhisperEngine:
    """whisper tiny.en through faster-whisper (CTranslate2, int8 on CPU), on a short encoder window.

    Why not ``WhisperModel.transcribe``: it always pads audio to whisper's 30 s window, and on a 2-core CPU
    the encoder then costs ~0.5 s per pass whatever the utterance length. Phone utterances are a few
    seconds, so the features are padded (with real silence) only to max(10 s, utterance + 1 s): the same
    words at a fifth of the cost, which is what makes re-transcribing every few hundred ms affordable.
    A pass that loops (high compression ratio) is redone on the full 30 s window.
    """

    def __init__(self, model_dir: str, threads: int) -> None:
        import ctranslate2
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        self._storage = ctranslate2.StorageView
        self._model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1)
        multilingual = self._model.model.is_multilingual
        self._tokenizer = Tokenizer(self._model.hf_tokenizer, multilingual, task="transcribe", language="en")
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]

    def warm_up(self) -> None:
        rng = np.random.default_rng(0)
        self.transcribe((rng.normal(0, 300, SAMPLE_RATE)).astype(np.int16).tobytes())

    def transcribe(self, pcm16: bytes, *, window_sec: int | None = None) -> tuple[str, float]:
        """Text and confidence (exp of the mean token log-prob) for 16 kHz mono PCM16 audio."""
        audio = np.frombuffer(pcm16[: len(pcm16) - len(pcm16) % 2], dtype=np.int16).astype(np.float32) / 32768.0
        audio = audio[-(_MAX_WINDOW_SEC - 1) * SAMPLE_RATE :]
        duration = len(audio) / SAMPLE_RATE
        window = window_sec or min(_MAX_WINDOW_SEC, max(_MIN_WINDOW_SEC, math.ceil(duration + 1)))
        padded = np.zeros(window * SAMPLE_RATE, dtype=np.float32)
        padded[: len(audio)] = audio
        features = self._model.feature_extractor(padded, padding=0)[:, : window * 100]
        result = self._model.model.generate(
            self._storage.from_array(np.ascontiguousarray(features[None], dtype=np.float32)),
            [self._prompt],
            beam_size=1,
            max_length=len(self._prompt) + 12 + int(8 * duration),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        text = self._tokenizer.decode(result.sequences_ids[0]).strip()
        logprob = float(result.scores[0]) if result.scores else 0.0
        if result.no_speech_prob > _NO_SPEECH_PROB and logprob < _LOW_LOGPROB:
            return "", 0.0
        if text and window < _MAX_WINDOW_SEC and _compression_ratio(text) > _MAX_COMPRESSION:
            return self.transcribe(pcm16, window_sec=_MAX_WINDOW_SEC)
        return text, math.exp(logprob)

    def close(self) -> None:
        self._model.model.unload_model()


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


_USEFUL_PREFIX = 32  # tokens of cached prefix that make a context worth reusing for another conversation
_TURN_SLACK = 16  # the end of the last reply (stop token, re-tokenized text) rarely matches the next prompt


@dataclass(eq=False)
class _Slot:
    llama: Any
    busy: bool = False
    last_used: float = 0.0


@dataclass
class Generation:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish: str = "stop"
    text: list[str] = field(default_factory=list)


class LlamaEngine:
    """A GGUF chat model on llama.cpp with ``slots`` independent contexts (the weights are mmapped once).

    Why several contexts: llama.cpp reuses the KV cache of the longest common token prefix of the previous
    prompt, so a conversation's next turn only evaluates the new messages (a few ms instead of the whole
    history). One context shared by two calls would throw that away at every turn; each job therefore takes
    the free context whose cached tokens match its prompt best.
    """

    EXTRA_STOPS = ("\n\n", "<|im_start|>", "\nUser:", "\nuser:")  # replies for the phone: one short paragraph

    def __init__(self, model_path: str, context_size: int, threads: int, slots: int) -> None:
        from llama_cpp import Llama, llama_chat_format

        if not Path(model_path).is_file():
            raise FileNotFoundError(model_path)
        self.context_size = context_size
        self._prefix = Llama.longest_token_prefix
        self._slots = [
            _Slot(
                Llama(
                    model_path=model_path,
                    n_ctx=context_size,
                    n_batch=256,
                    # Decoding one token at a time on 1 thread: with 2 it measured slower in whole calls, its
                    # threads waiting on each other while Piper, the event loop and the DB share the 2 cores.
                    # Prompt evaluation (a batch) still gets every core.
                    n_threads=1,
                    n_threads_batch=threads,
                    verbose=False,
                )
            )
            for _ in range(max(1, slots))
        ]
        self._lock = threading.Lock()
        first = self._slots[0].llama
        template = first.metadata.get("tokenizer.chat_template")
        if template:
            self._format: Callable[..., Any] = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=self._piece(first, first.token_eos()),
                bos_token=self._piece(first, first.token_bos()),
                stop_token_ids=[first.token_eos()],
            )
        else:  # a GGUF without a template: ChatML is the most common convention for small instruct models
            self._format = llama_chat_format.format_chatml

    @staticmethod
    def _piece(llama: Any, token: int) -> str:
        return "" if token < 0 else llama.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def warm_up(self) -> None:
        for slot in self._slots:
            for _ in slot.llama.create_completion(
                prompt=self.prompt([{"role": "user", "content": "Hi"}], 8)[0], max_tokens=1, stream=True
            ):
                pass

    def prompt(self, messages: list[dict[str, str]], max_tokens: int) -> tuple[list[int], list[str]]:
        """Token ids of the chat prompt and its stop strings; the oldest turns go if it does not fit."""
        llama = self._slots[0].llama
        messages = list(messages)
        budget = self.context_size - max_tokens
        while True:
            result = self._format(messages=messages)
            tokens = llama.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
            if len(tokens) <= budget:
                stops = [result.stop] if isinstance(result.stop, str) else list(result.stop or [])
                return tokens, [*stops, *self.EXTRA_STOPS]
            droppable = [i for i, m in enumerate(messages[:-1]) if m["role"] != "system"]
            if not droppable:
                raise ProviderError(PROVIDER, "the prompt does not fit the model's context", retryable=False)
            del messages[droppable[0]]

    def prefill(self, messages: list[dict[str, str]]) -> None:
        """Evaluate a conversation's start (the system prompt) into a context now, before the caller's turn."""
        tokens, _ = self.prompt(messages, 1)
        slot = self._acquire(tokens)
        try:
            for _ in slot.llama.create_completion(prompt=tokens, max_tokens=1, stream=True):
                pass
        finally:
            self._release(slot)

    def cached_prefix(self, messages: list[dict[str, str]]) -> int:
        """How many of this prompt's tokens some context already holds (for tests and benchmarks)."""
        tokens, _ = self.prompt(messages, 1)
        with self._lock:
            return int(max(self._prefix(s.llama.input_ids[: s.llama.n_tokens].tolist(), tokens) for s in self._slots))

    def generate(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        stop: threading.Event,
        emit: Callable[[str], None],
        pause: Callable[[], None] | None = None,
    ) -> Generation:
        """Stream a reply through ``emit``; ``pause`` is called after each token (it may block to yield the CPU)."""
        tokens, stops = self.prompt(messages, max_tokens)
        slot = self._acquire(tokens)
        out = Generation(prompt_tokens=len(tokens), finish="length")
        try:
            chunks = slot.llama.create_completion(
                prompt=tokens,
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=0.9,
                repeat_penalty=1.1,
                stop=stops,
                stream=True,
            )
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    if stop.is_set():
                        out.finish = "cancelled"
                        break
                    if choice["text"]:
                        out.text.append(choice["text"])
                        emit(choice["text"])
                    if choice.get("finish_reason"):
                        out.finish = choice["finish_reason"]
                    elif pause is not None:
                        pause()
            finally:
                chunks.close()
            reply = "".join(out.text).encode("utf-8")
            out.completion_tokens = len(slot.llama.tokenize(reply, add_bos=False)) if reply else 0
        finally:
            self._release(slot)
        return out

    def close(self) -> None:
        for slot in self._slots:
            slot.llama.close()

    def _acquire(self, tokens: list[int]) -> _Slot:
        """The free context whose cache serves ``tokens`` best; else the least recently used one.

        A cache is worth keeping for this prompt when it is this conversation's (the prompt continues
        nearly all of it) or shares a long prefix (the same agent's system prompt); a few common template
        tokens are not worth evicting another conversation's history for.
        """
        with self._lock:
            free = [slot for slot in self._slots if not slot.busy]
            if not free:
                raise ProviderError(PROVIDER, "no free llama.cpp context", retryable=True, status=503)

            def score(slot: _Slot) -> tuple[bool, int, float]:
                cached = slot.llama.n_tokens
                matched = self._prefix(slot.llama.input_ids[:cached].tolist(), tokens)
                useful = matched >= _USEFUL_PREFIX or (cached > 0 and matched >= cached - _TURN_SLACK)
                return useful, matched if useful else 0, -slot.last_used

            slot = max(free, key=score)
            slot.busy = True
            return slot

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.busy = False
            slot.last_used = time.monotonic()


class PiperEngine:
    """A Piper voice on onnxruntime: PCM16 at the voice's native rate, one piece per sentence."""

    def __init__(self, onnx_path: str, threads: int) -> None:
        import onnxruntime
        from piper import PiperConfig, PiperVoice

        config = PiperConfig.from_dict(json.loads(Path(f"{onnx_path}.json").read_text(encoding="utf-8")))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle intra-op threads must not spin: on 2 cores they would steal time from the LLM streaming next door.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(onnx_path, sess_options=options, providers=["CPUExecutionProvider"])
        self.voice = PiperVoice(session=session, config=config)
        self.sample_rate = config.sample_rate

    def warm_up(self) -> None:
        for _ in self.synthesize("Hello there.", 1.0):
            pass

    def close(self) -> None:
        pass

    def synthesize(self, text: str, speed: float) -> Iterator[bytes]:
        from piper import SynthesisConfig

        syn = SynthesisConfig(length_scale=self.voice.config.length_scale / max(0.25, min(speed, 4.0)))
        for chunk in self.voice.synthesize(text, syn_config=syn):
            yield chunk.audio_int16_bytes
