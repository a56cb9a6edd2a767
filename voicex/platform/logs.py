"""Log lines for machines (JSON) or people (text), each naming the request and the call it was written for.

The ids live in context variables: the request-id middleware sets the request's, the Twilio webhooks and the
Media Stream bind the call's once they know it. A filter on our handler copies them onto every record, so any
log call made meanwhile (handlers, the DB layer, the engine in pipelines/ and providers/) carries them without
passing them around. Our own loggers log at VOICEX_LOG_LEVEL; third-party libraries stay at WARNING, so DEBUG
shows the engine's per-turn events rather than driver and HTTP-client chatter.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# The packages whose loggers VOICEX_LOG_LEVEL sets; every other logger is a third party's.
OWN_LOGGERS = ("voicex", "pipelines", "providers")


@dataclass(slots=True)
class CallIds:
    """The call a task works for. Mutable, so ids bound inside a Media Stream's task also reach the request
    that started it (its access line); every request starts with a fresh one (voicex/web/middleware.py)."""

    call_id: str | None = None
    call_sid: str | None = None


call_ids_var: contextvars.ContextVar[CallIds | None] = contextvars.ContextVar("call_ids", default=None)


def bind_call(call_id: object = None, call_sid: object = None) -> None:
    """Tag the log lines of this task, and of the tasks it starts from now on, with the call's ids."""
    ids = call_ids_var.get()
    if ids is None:
        ids = CallIds()
        call_ids_var.set(ids)
    if call_id:
        ids.call_id = str(call_id)
    if call_sid:
        ids.call_sid = str(call_sid)[:64]  # read from the request before its signature is checked: bounded


class ContextFilter(logging.Filter):
    """Copies the request id and the call's ids from the context onto each record (as ``extra=`` would)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id and not hasattr(record, "requestId"):
            record.requestId = request_id
        ids = call_ids_var.get()
        if ids is not None:
            if ids.call_id and not hasattr(record, "callId"):
                record.callId = ids.call_id
            if ids.call_sid and not hasattr(record, "callSid"):
                record.callSid = ids.call_sid
        return True


# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged as a field.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's ``extra=`` fields and context ids."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRS and not key.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request/call ids, extra fields, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """``2025-05-01 14:03:07.123 INFO    voicex.access: GET /api/agents 200  key=value …``, local time.

    A field whose value the message already shows (it is one of the message's arguments) is left out.
    """

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        args = record.args if isinstance(record.args, tuple) else ()
        shown = [f"{key}={_text_value(value)}" for key, value in _fields(record).items() if not _in(value, args)]
        if shown:
            line += "  " + " ".join(shown)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _in(value: Any, args: tuple[Any, ...]) -> bool:
    return isinstance(value, str | int | float) and any(type(arg) is type(value) and arg == value for arg in args)


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        plain = value and not any(char.isspace() or char in '"=' for char in value)
        return value if plain else orjson.dumps(value).decode()
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def configure_logging(
    level: str = "INFO", stream: Any = None, *, fmt: str | None = None, third_party_level: str | None = None
) -> None:
    """Route all logging through one handler on stderr (idempotent).

    ``fmt`` is ``json`` or ``text``; None picks text for a terminal, JSON otherwise (a file, a log collector).
    Our loggers (:data:`OWN_LOGGERS`) log at ``level``; every other one at ``third_party_level``, by default
    WARNING or ``level`` if that is higher.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_voicex", False):
            root.removeHandler(handler)
    out = stream or sys.stderr
    if fmt is None:
        fmt = "text" if getattr(out, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    handler.addFilter(ContextFilter())
    handler._voicex = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    own = _level(level)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(own)
    root.setLevel(_level(third_party_level) if third_party_level else max(logging.WARNING, own))


def _level(name: str) -> int:
    return logging.getLevelNamesMapping()[name.upper()]
