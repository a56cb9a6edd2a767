"""Check a model file against its recorded SHA-256 (providers/local/model_hashes.py) before it is loaded.

Hashing the three default models (~240 MB) costs about a second of one core, so it happens once per process for
each file, in the pool worker that loads the model (never on the event loop), and is remembered by (path, size,
modification time): a file replaced afterwards is hashed again.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from providers.base import ProviderError
from providers.local.pool import PROVIDER

_CHUNK = 1 << 20
_verified: dict[tuple[str, int, int], str] = {}  # (real path, size, mtime ns) -> its SHA-256
_lock = threading.Lock()


def sha256_of(path: Path) -> str:
    """The file's SHA-256, computed once per (path, size, modification time) in this process."""
    status = path.stat()
    key = (os.path.realpath(path), status.st_size, status.st_mtime_ns)
    with _lock:
        known = _verified.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    with _lock:
        _verified[key] = value
    return value


def verify(path: Path, recorded: Mapping[str, str]) -> None:
    """ProviderError unless ``path``'s SHA-256 is the one recorded for its file name."""
    expected = recorded.get(path.name)
    if expected is None:
        raise ProviderError(
            PROVIDER,
            f"refusing to load model file {path}: no SHA-256 is recorded for {path.name!r}"
            " (record it in providers/local/model_hashes.py)",
            retryable=False,
        )
    if not path.is_file():
        raise ProviderError(PROVIDER, f"model file not found: {path}", retryable=False)
    actual = sha256_of(path)
    if actual != expected:
        raise ProviderError(
            PROVIDER,
            f"refusing to load model file {path}: its SHA-256 is {actual}, expected {expected}"
            " (recorded in providers/local/model_hashes.py); reinstall its package",
            retryable=False,
        )


def verify_all(directory: Path, recorded: Mapping[str, str]) -> None:
    """Every recorded file of a model kept as a folder (whisper's)."""
    for name in recorded:
        verify(directory / name, recorded)
