"""The server's error types. HTTP errors become ``{"error": "..."}`` in one middleware (voicex/web/middleware.py)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails


class VoicexError(Exception):
    """Base class for errors the server reports in words rather than tracebacks."""

    exit_code = 1  # what the ``voicex`` command exits with: an action was refused (an email taken, no such user)


class SetupError(VoicexError):
    """The process cannot run as configured: a setting, a config file, the data dir, the database, the port or
    the shared secrets. The message names the setting and the fix; ``voicex`` exits with 2 (as for a usage error),
    so a script or supervisor can tell "fix the configuration" from "the action was refused"."""

    exit_code = 2


class SettingsError(SetupError):
    """A ``VOICEX_*`` variable has a bad value; the message names the variable."""


class ConfigError(SetupError):
    """A file under ``config/`` is missing or invalid; the message names the file and field."""


class EmbeddedDatabaseError(SetupError):
    """The embedded MongoDB-wire server could not start or stop."""


class ApiError(VoicexError):
    """An HTTP error with a human-readable message and optional extra JSON fields."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


def bad_request(message: str, **extra: Any) -> ApiError:
    return ApiError(400, message, **extra)


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, message)


def forbidden(message: str, **extra: Any) -> ApiError:
    return ApiError(403, message, **extra)


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, f"{what} not found")


def conflict(message: str, **extra: Any) -> ApiError:
    return ApiError(409, message, **extra)


# What a value matching each field pattern looks like, in words: a client is told "use E.164, like
# +14155550123", never a regular expression. Patterns register themselves through :func:`hinted`.
_PATTERN_HINTS: dict[str, str] = {}


def hinted(pattern: str, hint: str) -> str:
    """``pattern``, remembered with the words a validation error uses for a value that does not match it."""
    _PATTERN_HINTS[pattern] = hint
    return pattern


def describe_problem(error: ErrorDetails) -> str:
    """One pydantic error in words: its message, or for a pattern the hint registered with :func:`hinted`."""
    if error["type"] == "string_pattern_mismatch":
        return _PATTERN_HINTS.get(str((error.get("ctx") or {}).get("pattern")), "has an invalid format")
    return error["msg"].removeprefix("Value error, ")


def describe_validation_error(exc: ValidationError) -> str:
    """``"persona.greeting: String should have at most 500 characters"``: the field, then the problem."""
    first = exc.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"])
    message = describe_problem(first)
    return f"{location}: {message}" if location else message
