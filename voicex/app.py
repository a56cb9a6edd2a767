"""The aiohttp application factory: middlewares, routes and the shared services."""

from __future__ import annotations

from aiohttp import web

from voicex.api import health, setup
from voicex.context import SERVICES, Services
from voicex.middleware import METRICS_KEY, add_request_id_header, error_middleware, observe_middleware


def create_app(services: Services) -> web.Application:
    """Build the app around already-started services (the caller owns their lifecycle)."""
    app = web.Application(
        middlewares=[observe_middleware, error_middleware],
        client_max_size=services.settings.max_body_bytes,
    )
    app[SERVICES] = services
    app[METRICS_KEY] = services.metrics
    app.on_response_prepare.append(add_request_id_header)
    for module in (health, setup):
        app.add_routes(module.routes)
    return app
