"""Every error leaves the server as {"error": "..."} with the right status."""

from __future__ import annotations

import logging

from aiohttp import web

from voicex.web.http import json_response, read_json


def _test_routes(app: web.Application) -> None:
    async def echo(request: web.Request) -> web.Response:
        return json_response({"received": await read_json(request)})

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals: do not show")

    app.router.add_post("/api/test/echo", echo)
    app.router.add_get("/api/test/boom", boom)


async def test_unknown_route_is_404_json(client) -> None:
    response = await client.get("/api/does-not-exist")
    assert response.status == 404
    assert await response.json() == {"error": "not found"}


async def test_wrong_method_is_405_json(client) -> None:
    response = await client.post("/api/health")
    assert response.status == 405
    assert await response.json() == {"error": "method not allowed"}
    assert "GET" in response.headers["Allow"]


async def test_malformed_json_is_400(make_client) -> None:
    client = await make_client(_test_routes)
    response = await client.post("/api/test/echo", data=b'{"name": ', headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"].startswith("malformed JSON body")
    response = await client.post("/api/test/echo", data=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert await response.json() == {"error": "request body must be a JSON object"}
    response = await client.post("/api/test/echo", json={"name": "ok"})
    assert await response.json() == {"received": {"name": "ok"}}


async def test_body_over_the_limit_is_413(make_client, services) -> None:
    client = await make_client(_test_routes)
    too_big = b'{"x": "' + b"a" * services.settings.max_body_bytes + b'"}'
    response = await client.post("/api/test/echo", data=too_big, headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert await response.json() == {"error": "request body too large"}

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(services.settings.max_body_bytes // 65536 + 2):
            yield b"a" * 65536

    response = await client.post("/api/test/echo", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert await response.json() == {"error": "request body too large"}


async def test_unhandled_exception_is_500_with_request_id_and_traceback_only_in_log(make_client, caplog) -> None:
    client = await make_client(_test_routes)
    with caplog.at_level(logging.ERROR, logger="voicex.web.http"):
        response = await client.get("/api/test/boom")
    assert response.status == 500
    body = await response.json()
    assert body == {"error": "internal error", "requestId": response.headers["X-Request-Id"]}
    assert "secret internals" not in await response.text()
    records = [record for record in caplog.records if record.name == "voicex.web.http"]
    assert records and records[0].exc_info is not None
    assert "secret internals" in str(records[0].exc_info[1])
