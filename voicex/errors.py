"""The server's error types. HTTP errors become ``{"error": "..."}`` in one middleware (voicex/middleware.py)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class VoicexError(Exception):
    """Base class for errors the server reports in words rather than tracebacks."""


class SettingsError(VoicexError):
    """A ``VOICEX_*`` variable has a bad value; the message names the variable."""


class ConfigError(VoicexError):
    """A file under ``config/`` is missing or invalid; the message names the file and field."""


class EmbeddedDatabaseError(VoicexError):
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


def describe_validation_error(exc: ValidationError) -> str:
    """``"persona.greeting: String should have at most 500 characters"``: the field, then the problem."""
    first = exc.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{location}: {message}" if location else message
