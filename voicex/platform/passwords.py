"""Password hashing (argon2id) and the shared rules for emails and passwords."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 8
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()


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
