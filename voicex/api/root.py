"""``/``: the dashboard when one is installed, else a small page saying where to start.

The dashboard, when a later version adds it, registers a route at ``/app``; ``/`` then redirects there. The
page needs nothing from outside this server (no fonts, scripts or style sheets from elsewhere).
"""

from __future__ import annotations

from aiohttp import web

from voicex import __version__

DASHBOARD_PATHS = ("/app", "/app/")

PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Voicex</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;color:#222}}
code{{background:#f3f3f3;padding:0 .25rem}}h1{{margin-bottom:0}}.v{{color:#777;margin-top:0}}</style></head>
<body>
<h1>Voicex</h1>
<p class="v">version {__version__}: a real-time voice agent media server. This is its HTTP API.</p>
<h2>The API</h2>
<ul>
<li><a href="/api/docs">API docs</a> (Swagger UI, works offline)</li>
<li><a href="/api/openapi.json">OpenAPI document</a> (<code>/api/openapi.json</code>)</li>
<li><a href="/api/health">Health</a> (<code>/api/health</code>) and <a href="/api/ready">readiness</a>
(<code>/api/ready</code>: names a failing dependency)</li>
<li><a href="/api/setup/status">Setup status</a>: whether a platform admin exists
(create one with <code>voicex admin create</code>)</li>
</ul>
<h2>First steps</h2>
<p>In the README, read in this order:</p>
<ol>
<li><b>Quick start</b>: the offline demo call (<code>voicex demo</code>)</li>
<li><b>Putting an agent on a real phone number</b>: Twilio, the platform admin, an agent</li>
<li><b>Configuration</b>: every <code>VOICEX_*</code> variable</li>
<li><b>HTTP API</b>: the endpoints in short (the contract is <code>docs/api-reference.md</code>)</li>
</ol>
</body></html>
"""

routes = web.RouteTableDef()


def dashboard_path(app: web.Application) -> str | None:
    """The dashboard's path when the app has one registered, else None."""
    registered = {resource.canonical for resource in app.router.resources()}
    return next((path for path in DASHBOARD_PATHS if path in registered), None)


@routes.get("/", allow_head=False)
async def root(request: web.Request) -> web.Response:
    dashboard = dashboard_path(request.app)
    if dashboard is not None:
        return web.Response(status=302, headers={"Location": dashboard})
    return web.Response(text=PAGE, content_type="text/html")
