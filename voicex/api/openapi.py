"""Request validation and the OpenAPI 3.1 document, both from the same pydantic models (aiohttp-pydantic).

Handlers are plain functions decorated with :data:`endpoint`: a pydantic-model argument is the JSON body,
positional-only arguments are path parameters, other arguments are query parameters. Return annotations
(``r200[Model] | r404[ErrorOut]``) and the docstring's ``Tags:``/``Security:``/``Status Codes:`` blocks feed
the document served at ``/api/openapi.json``; routes that are not such endpoints (Twilio's webhooks, metrics,
pages) are described in voicex/api/openapi_paths.py. Swagger UI is at ``/api/docs`` (voicex/api/docs.py).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from aiohttp_pydantic.decorator import inject_params
from aiohttp_pydantic.oas import pydantic_schema_to_oas
from aiohttp_pydantic.oas.view import generate_oas
from pydantic import BaseModel, ValidationError

from voicex import __version__
from voicex.api import openapi_paths
from voicex.platform.errors import describe_validation_error
from voicex.web.http import dumps, json_response

# aiohttp-pydantic 2.6 labels its output 3.0.0 and rewrites pydantic's schemas to 3.0 (dropping nullable
# string limits, emitting 3.0-invalid exclusive bounds). pydantic v2 already produces JSON Schema that is
# valid OpenAPI 3.1, so keep it as it is and label the document 3.1.0.
pydantic_schema_to_oas.add_or_replace_translater("3.0.0", pydantic_schema_to_oas.pydantic_schema_to_oas_3_1)

SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key"},
}


class ErrorOut(BaseModel):
    """Every error response: a human-readable message (some add fields, e.g. ``agents`` on a 409)."""

    error: str


async def _on_validation_error(exc: ValidationError, context: str) -> web.StreamResponse:
    return json_response({"error": describe_validation_error(exc)}, status=400)


_inject = inject_params(on_validation_error=_on_validation_error).and_request
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def endpoint(handler: Callable[..., Awaitable[Any]]) -> Handler:
    """Decorator for API handlers: ``async def handler(request, <params>) -> r200[Out] | r400[ErrorOut]``.

    aiohttp-pydantic's decorator is untyped; this one says what it makes: an aiohttp handler taking the request
    (the parameters are parsed from it, a 400 answered when they do not validate)."""
    return cast(Handler, _inject(handler))


_SPEC_KEY = web.AppKey("openapi_spec", dict)


def install(app: web.Application) -> None:
    """Serve the document; it is built on first request, once routes are final."""
    app[_SPEC_KEY] = {}
    app.add_routes(routes)


def build_spec(app: web.Application) -> dict[str, Any]:
    spec = generate_oas([app], version_spec=__version__, title_spec="Voicex API", security=SECURITY_SCHEMES)
    spec["openapi"] = "3.1.0"
    _add_hand_written(app, spec)
    spec["info"]["description"] = (
        "Manage organizations, agents, providers, API keys, calls and usage. Dashboard endpoints accept a"
        " session token (`Authorization: Bearer`) or an API key (`x-api-key`). Errors are"
        ' `{"error": "..."}`.'
    )
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            # "Security: bearerAuth, apiKeyAuth" means either one, not both at once.
            for requirement in list(operation.get("security", [])):
                if len(requirement) > 1:
                    operation["security"] = [{name: []} for name in requirement]
            if "requestBody" in operation:
                operation["requestBody"]["required"] = True
    return dict(spec)


def _add_hand_written(app: web.Application, spec: dict[str, Any]) -> None:
    """Merge the hand-written path items (voicex/api/openapi_paths.py) of the routes this app registers."""
    registered = {(route.method.lower(), route.resource.canonical) for route in app.router.routes() if route.resource}
    paths = spec.setdefault("paths", {})
    for path, item in openapi_paths.PATHS.items():
        for method, operation in item.items():
            if (method, path) in registered:
                paths.setdefault(path, {})[method] = copy.deepcopy(operation)  # build_spec adjusts operations
    components = spec.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(openapi_paths.SECURITY_SCHEMES)
    components.setdefault("schemas", {}).setdefault("ErrorOut", ErrorOut.model_json_schema())


routes = web.RouteTableDef()


@routes.get("/api/openapi.json", allow_head=False)
async def openapi_json(request: web.Request) -> web.Response:
    cache = request.app[_SPEC_KEY]
    if "body" not in cache:
        cache["body"] = dumps(build_spec(request.app))
    return web.Response(body=cache["body"], content_type="application/json")
