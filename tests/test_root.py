"""``/``: a first-time visitor finds the docs and probes; once a dashboard exists, they land on it."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

README = Path(__file__).resolve().parent.parent / "README.md"


async def test_the_root_page_links_the_docs_and_probes_and_names_the_readme_sections(client) -> None:
    response = await client.get("/", allow_redirects=False)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = await response.text()
    assert not re.search(r"(?:https?:)?//", page), "the page must not load anything from another origin"
    links = re.findall(r'href="([^"]+)"', page)
    assert {"/api/docs", "/api/openapi.json", "/api/health", "/api/ready"} <= set(links)
    for link in links:
        if link.startswith("/"):
            assert (await client.get(link)).status == 200, link
    headings = set(re.findall(r"^## (.+)$", README.read_text(), flags=re.MULTILINE))
    named = re.findall(r"<li><b>([^<]+)</b>", page)
    assert named and set(named) <= headings, f"sections not in README.md: {set(named) - headings}"


async def test_the_root_redirects_to_the_dashboard_once_one_is_installed(make_client) -> None:
    async def dashboard(request: web.Request) -> web.Response:
        return web.Response(text="the dashboard", content_type="text/html")

    client = await make_client(lambda app: app.router.add_get("/app", dashboard))
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/app"
    followed = await client.get("/")
    assert await followed.text() == "the dashboard"
