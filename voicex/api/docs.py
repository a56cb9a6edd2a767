"""``/api/docs``: Swagger UI over ``/api/openapi.json``, served by this server so it works offline.

Swagger UI's files come from the ``swagger-ui-py`` package (a dependency: its bundle is too big to keep in the
repository), which ships the ``swagger-ui-dist`` build under ``swagger_ui/static``. Only the three files the page
needs are served; the package's Python code (a Jinja-templated integration) is never imported.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from aiohttp import web

from voicex.platform.errors import ApiError

# The files the page loads, with their content types.
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
SWAGGER_UI_PACKAGE = "swagger_ui"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Voicex API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" type="image/png" href="/api/docs/favicon-32x32.png">
<link rel="stylesheet" href="/api/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null});
</script>
</body></html>
"""

_MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Voicex API</title><link rel="icon" href="data:,"></head>
<body><p>Swagger UI is not installed (<code>pip install swagger-ui-py</code>, a dependency of Voicex).
The API is described by <a href="/api/openapi.json">/api/openapi.json</a>.</p></body></html>
"""

routes = web.RouteTableDef()


@functools.cache
def assets_dir() -> Path | None:
    """Where the installed Swagger UI files are, found without importing the package; None if not installed."""
    spec = importlib.util.find_spec(SWAGGER_UI_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "static"
        if all((folder / name).is_file() for name in ASSETS):
            return folder
    return None


@routes.get("/api/docs", allow_head=False)
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=_PAGE if assets_dir() else _MISSING, content_type="text/html")


@routes.get("/api/docs/{asset}", allow_head=False)
async def asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["asset"]
    folder = assets_dir()
    if name not in ASSETS or folder is None:
        raise ApiError(
            404, "not found" if name not in ASSETS else "Swagger UI is not installed (pip install swagger-ui-py)"
        )
    # no-cache: revalidated (304 by ETag) on each load, so an upgraded package is picked up at once.
    headers = {"Content-Type": ASSETS[name], "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return web.FileResponse(folder / name, headers=headers)
