"""The aiohttp application factory: middlewares, routes and the shared services."""

from __future__ import annotations

from aiohttp import web

from voicex.api import (
    admin,
    agents,
    api_keys,
    auth,
    calls,
    docs,
    health,
    models,
    openapi,
    organization,
    provider_check,
    provider_registry,
    providers,
    root,
    setup,
    usage,
)
from voicex.calls.janitor import janitor_ctx
from voicex.platform.metrics_share import publishing
from voicex.platform.services import SERVICES, Services
from voicex.server.looplag import loop_lag_ctx
from voicex.telephony import stream, webhooks
from voicex.web.auth import auth_middleware
from voicex.web.cors import cors_middleware
from voicex.web.middleware import (
    METRICS_KEY,
    add_request_id_header,
    error_middleware,
    observe_middleware,
    quiet_parser_errors,
)
from voicex.web.ratelimit import ip_rate_limit_middleware, principal_rate_limit_middleware

ROUTE_MODULES = (
    root,
    health,
    setup,
    auth,
    organization,
    admin,
    provider_registry,
    providers,
    provider_check,
    models,
    agents,
    api_keys,
    calls,
    usage,
    webhooks,
    stream,
    docs,
)


def create_app(services: Services) -> web.Application:
    """Build the app around already-started services (the caller owns their lifecycle).

    Middleware order matters: observe (ids, logs, metrics) wraps CORS, which wraps the error middleware
    so error responses carry CORS headers too; the IP rate limit runs before authentication (failed
    guesses count), the per-organization limit after it.
    """
    app = web.Application(
        middlewares=[
            observe_middleware,
            cors_middleware,
            error_middleware,
            ip_rate_limit_middleware,
            auth_middleware,
            principal_rate_limit_middleware,
        ],
        client_max_size=services.settings.max_body_bytes,
        # Closes a connection with no whole request this long after connecting: a slow-header client included.
        handler_args={"keepalive_timeout": services.settings.http_idle_timeout_sec},
    )
    quiet_parser_errors()
    app[SERVICES] = services
    app[METRICS_KEY] = services.metrics
    services.metrics.watch_db(services.db.pool)
    app.on_response_prepare.append(add_request_id_header)
    for module in ROUTE_MODULES:
        app.add_routes(module.routes)
    openapi.install(app)
    app.cleanup_ctx.append(janitor_ctx)
    app.cleanup_ctx.append(loop_lag_ctx)
    folder, worker = services.settings.metrics_dir, services.settings.worker_id
    if folder is not None and worker is not None:
        app.cleanup_ctx.append(lambda _app: publishing(folder, worker, services.metrics.render))
    return app
