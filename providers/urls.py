"""Checks for values that adapters put into vendor URLs.

A voice id becomes a path segment (ElevenLabs: ``/v1/text-to-speech/{voice_id}/stream``). A tenant chooses it,
so one with ``/``, ``..``, ``?`` or ``#`` could reach another endpoint of the vendor's API with the
platform's key. Only unreserved characters are allowed, and never a segment made of dots alone.
"""

from __future__ import annotations

import re

_SEGMENT = re.compile(r"[A-Za-z0-9._~-]{1,128}")


def is_path_segment(value: str) -> bool:
    """Whether ``value`` is safe as one URL path segment as it is (no escaping needed, no traversal)."""
    return bool(_SEGMENT.fullmatch(value)) and value.strip(".") != ""
