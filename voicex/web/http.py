"""JSON in and out: the one place that encodes responses and decodes request bodies."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from aiohttp import web
from bson import ObjectId

from voicex.platform.errors import ApiError


def _default(value: Any) -> Any:
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(data: Any) -> bytes:
    """Encode to JSON; ObjectIds become hex strings and datetimes ISO 8601 UTC (``...Z``)."""
    return orjson.dumps(data, default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(data), status=status, headers=headers, content_type="application/json")


def error_response(error: ApiError) -> web.Response:
    return json_response(error.body(), status=error.status, headers=error.headers or None)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying what is wrong with it (413 when too large)."""
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "request body must be a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON body: {exc.args[0] if exc.args else 'invalid'}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data
