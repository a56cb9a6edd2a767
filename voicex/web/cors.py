"""CORS for the dashboard: only origins listed in VOICEX_CORS_ORIGINS (none by default) may call the API."""

from __future__ import annotations

from aiohttp import web

from voicex.platform.services import services
from voicex.web.middleware import Handler

_ALLOWED_HEADERS = "Authorization, Content-Type, x-api-key, X-Request-Id"
_ALLOWED_METHODS = "GET, POST, PATCH, PUT, DELETE, OPTIONS"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in services(request).settings.cors_origins
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            return web.Response(status=403, text='{"error": "origin not allowed"}', content_type="application/json")
        response: web.StreamResponse = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = _ALLOWED_METHODS
        response.headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    else:
        response = await handler(request)
    if allowed and origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "X-Request-Id, Retry-After"
        response.headers["Vary"] = "Origin"
    return response
