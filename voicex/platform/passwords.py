"""Password hashing (argon2id) and the shared rules for emails and passwords.

One argon2 hash or check costs ~250 ms of CPU by design; on the event loop it would stall every call's audio
for as long. The server runs them with :func:`off_loop` on a small pool of threads (argon2 releases the GIL),
which also caps how many run at once, so a burst of sign-ins queues instead of taking every core. The threads
run at a lower CPU priority, so on a busy machine the loop that paces call audio still gets a core when it wakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 8
HASHING_THREADS = 2  # argon2 hashes or checks at once; the rest wait their turn, off the event loop
HASHING_NICENESS = 10  # added to the hashing threads' nice value (Linux: per thread; argon2's own threads inherit it)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()


def _lower_priority() -> None:
    """Runs in each hashing thread as it starts. Only Linux renices one thread (elsewhere it is the process)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) + HASHING_NICENESS)


_hashing_pool = ThreadPoolExecutor(
    max_workers=HASHING_THREADS, thread_name_prefix="voicex-argon2", initializer=_lower_priority
)

T = TypeVar("T")


def normalize_email(email: str) -> str:
    """Case- and whitespace-insensitive form used for storage and lookup; ValueError if not an email."""
    normalized = email.strip().lower()
    if not _EMAIL.match(normalized) or len(normalized) > 254:
        raise ValueError("email must be a valid email address")
    return normalized


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def off_loop(work: Callable[..., T], *args: str) -> T:
    """``work(*args)`` (``hash_password`` or ``verify_password``) on the hashing threads, not the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_hashing_pool, work, *args)
