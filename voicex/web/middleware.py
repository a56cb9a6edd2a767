"""HTTP middlewares: request ids, access logs and metrics; and the single place errors become JSON.

Every error leaves the server as ``{"error": "..."}``: ApiError from handlers, aiohttp's own HTTP
errors (unknown route, method not allowed, body too large) and unhandled exceptions (500, with the
request id, the traceback only in the log).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from voicex.platform.errors import ApiError
from voicex.platform.logs import CallIds, call_ids_var, request_id_var
from voicex.platform.metrics import Metrics
from voicex.web.client_ip import client_ip
from voicex.web.http import error_response

log = logging.getLogger("voicex.web.http")
access_log = logging.getLogger("voicex.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID_HEADER = "X-Request-Id"
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_AIOHTTP_MESSAGES = {
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
}

# Health probes and metric scrapes: their access lines are DEBUG unless they fail.
QUIET_ROUTES = frozenset({"/api/health", "/api/ready", "/metrics"})

METRICS_KEY = web.AppKey("metrics", Metrics)
REQUEST_ID_KEY = web.RequestKey("request_id", str)
SENT_STATUS_KEY = web.RequestKey("sent_status", int)  # the status line already sent (a WebSocket's 101)


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _message_from_body(exc: web.HTTPException) -> str | None:
    """aiohttp-pydantic raises 400s whose JSON body says what was wrong; keep that message."""
    if exc.content_type != "application/json" or not exc.text:
        return None
    try:
        body = orjson.loads(exc.text)
    except orjson.JSONDecodeError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = str(body["error"])
        return "malformed JSON body" if message == "Malformed JSON" else message
    if isinstance(body, list) and body and isinstance(body[0], dict) and "msg" in body[0]:
        where = body[0].get("in", "request")
        return "request body must be a JSON object" if where == "body" else f"{where}: {body[0]['msg']}"
    return None


def _http_error(exc: web.HTTPException) -> ApiError:
    message = _AIOHTTP_MESSAGES.get(exc.status) or _message_from_body(exc) or (exc.reason or "error").lower()
    error = ApiError(exc.status, message)
    for name in ("Allow", "Retry-After", "Location"):
        if name in exc.headers:
            error.headers[name] = exc.headers[name]
    return error


def _error_message(response: web.StreamResponse | None) -> str | None:
    """The ``{"error": ...}`` message a 4xx/5xx told the client (already written for the caller: no secrets)."""
    if response is None or response.status < 400 or not isinstance(response, web.Response):
        return None
    body = response.body
    if response.content_type != "application/json" or not isinstance(body, bytes) or len(body) > 8192:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    message = data.get("error") if isinstance(data, dict) else None
    return message[:300] if isinstance(message, str) else None


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Assign the request id, then time, count and log the request once it is answered.

    Successful probes and scrapes log at DEBUG (one every few seconds would drown the calls at INFO); an error
    line says why, with the message the client got.
    """
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
    request[REQUEST_ID_KEY] = request_id
    token = request_id_var.set(request_id)
    call_token = call_ids_var.set(CallIds())  # a Twilio handler fills it in (voicex.platform.logs.bind_call)
    started = time.perf_counter()
    status = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # a redirect a handler raised
        status = exc.status
        raise
    except asyncio.CancelledError:  # the client went away (or a WebSocket closed) before the handler returned
        status = request.get(SENT_STATUS_KEY, 499)  # nginx's "client closed request" when nothing was sent
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_label(request)
        metrics = request.app.get(METRICS_KEY)
        if metrics is not None:
            metrics.http_requests.labels(request.method, route, str(status)).inc()
            metrics.http_latency.labels(request.method, route).observe(elapsed)
        path = _logged_path(request)
        fields = {
            "method": request.method,
            "path": path,
            "status": status,
            "durationMs": round(elapsed * 1000, 2),
            "remote": client_ip(request),  # through the trusted proxies (VOICEX_TRUSTED_PROXIES)
        }
        level = logging.DEBUG if route in QUIET_ROUTES and status < 400 else logging.INFO
        error = _error_message(response)
        if error is None:
            access_log.log(level, "%s %s %d", request.method, path, status, extra=fields)
        else:
            fields["error"] = error
            access_log.log(level, "%s %s %d: %s", request.method, path, status, error, extra=fields)
        call_ids_var.reset(call_token)
        request_id_var.reset(token)


def _logged_path(request: web.Request) -> str:
    """The path as logged: a credential in it (a route's ``{token}``, e.g. a Media Stream's) is left out."""
    token = request.match_info.get("token")
    return request.path.replace(token, "…") if token else request.path


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into ``{"error": ...}`` with the right status."""
    max_size = request.app._client_max_size
    if request.content_length is not None and request.content_length > max_size:
        return error_response(ApiError(413, _AIOHTTP_MESSAGES[413]))
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_http_error(exc))
    except Exception as exc:
        if isinstance(exc, UnicodeDecodeError) and request.body_exists:
            # aiohttp's request.json()/text() raise this, not a JSON error, for a body that is not UTF-8.
            return error_response(ApiError(400, "malformed JSON body: not UTF-8"))
        log.exception("unhandled error", extra={"method": request.method, "path": request.path})
        return error_response(ApiError(500, "internal error", requestId=request.get(REQUEST_ID_KEY)))


class ParserErrorFilter(logging.Filter):
    """Turns aiohttp's ERROR-with-traceback for a request its parser refused into one warning line.

    A header over 8190 bytes, more than 128 headers or a malformed request line is bad client input, answered
    400 before the app runs; it is not a server fault, and the logged excerpt of the input may hold credentials.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.levelno >= logging.ERROR and isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "bad request refused by the HTTP parser: %s", (type(exc).__name__,)
            record.exc_info, record.exc_text = None, None
        return True


def quiet_parser_errors() -> None:
    """Install :class:`ParserErrorFilter` on aiohttp's server logger (idempotent)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(existing, ParserErrorFilter) for existing in logger.filters):
        logger.addFilter(ParserErrorFilter())


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: echo the request id on every response, WebSocket upgrades included; note the
    status sent, for the access line of a handler that never returns it."""
    request_id = request.get(REQUEST_ID_KEY)
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    request[SENT_STATUS_KEY] = response.status
