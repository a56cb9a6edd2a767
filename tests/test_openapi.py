"""The OpenAPI 3.1 document: valid, listing every route the server answers with its schemas; and Swagger UI
over it, served by the server itself (no internet needed)."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

ENDPOINTS = {
    ("post", "/api/auth/signup"),
    ("post", "/api/auth/signin"),
    ("get", "/api/auth/me"),
    ("get", "/api/admin/organizations"),
    ("patch", "/api/admin/organizations/{id}"),
    ("get", "/api/plans"),
    ("get", "/api/dashboard/plan"),
    ("get", "/api/dashboard/organization"),
    ("patch", "/api/dashboard/organization"),
    ("get", "/api/dashboard/stats"),
    ("get", "/api/dashboard/providers/registry"),
    ("get", "/api/dashboard/providers"),
    ("post", "/api/dashboard/providers"),
    ("get", "/api/dashboard/providers/{id}"),
    ("patch", "/api/dashboard/providers/{id}"),
    ("delete", "/api/dashboard/providers/{id}"),
    ("get", "/api/dashboard/models/search"),
    ("get", "/api/dashboard/agents"),
    ("post", "/api/dashboard/agents"),
    ("get", "/api/dashboard/agents/{id}"),
    ("patch", "/api/dashboard/agents/{id}"),
    ("delete", "/api/dashboard/agents/{id}"),
    ("get", "/api/dashboard/api-keys"),
    ("post", "/api/dashboard/api-keys"),
    ("delete", "/api/dashboard/api-keys/{id}"),
    ("get", "/api/dashboard/calls"),
    ("get", "/api/dashboard/calls/{id}"),
    ("get", "/api/dashboard/calls/count"),
    ("get", "/api/dashboard/analytics/usage"),
}


async def test_openapi_document_is_valid_31_and_lists_every_endpoint(client) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    spec = await response.json()
    validate(spec)
    assert spec["openapi"] == "3.1.0"
    listed = {(method, path) for path, item in spec["paths"].items() for method in item}
    missing = ENDPOINTS - listed
    assert not missing, f"not in the OpenAPI document: {sorted(missing)}"
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyAuth", "metricsToken"}
    for method, path in ENDPOINTS:
        operation = spec["paths"][path][method]
        success = next(code for code in operation["responses"] if code.startswith("2"))
        assert "content" in operation["responses"][success], f"{method} {path} has no response schema"
        if method in ("post", "patch"):
            assert operation["requestBody"]["required"] is True, f"{method} {path} has no request schema"
        if path.startswith("/api/dashboard/"):
            assert {"bearerAuth": []} in operation["security"] and {"apiKeyAuth": []} in operation["security"], path


async def test_every_route_the_server_answers_is_in_the_document(client) -> None:
    spec = await (await client.get("/api/openapi.json")).json()
    validate(spec)
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    listed = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert ("post", "/api/twilio/voice") in routes and ("get", "/") in routes  # the app's table is the real one
    assert not routes - listed, f"routes missing from the OpenAPI document: {sorted(routes - listed)}"
    assert not listed - routes, f"documented but not served: {sorted(listed - routes)}"


async def test_twilio_probe_and_metrics_routes_are_described_with_their_formats(client) -> None:
    paths = (await (await client.get("/api/openapi.json")).json())["paths"]
    for webhook in ("/api/twilio/voice", "/api/twilio/status"):
        operation = paths[webhook]["post"]
        form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
        assert "CallSid" in form["properties"] and "CallStatus" in form["properties"], webhook
        assert {"name": "api_key", "in": "query"}.items() <= operation["parameters"][0].items(), webhook
        assert "403" in operation["responses"], webhook
    assert "text/xml" in paths["/api/twilio/voice"]["post"]["responses"]["200"]["content"]
    assert "204" in paths["/api/twilio/status"]["post"]["responses"]
    assert {"101", "403", "503"} <= set(paths["/api/twilio/stream/{call_id}/{token}"]["get"]["responses"])
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert "401" in paths["/metrics"]["get"]["responses"]
    ready = paths["/api/ready"]["get"]["responses"]
    assert {"200", "503"} <= set(ready) and "application/json" in ready["503"]["content"]
    setup = paths["/api/setup/status"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert setup["$ref"].endswith("/SetupStatusOut")


async def test_swagger_ui_loads_everything_from_this_server(client) -> None:
    response = await client.get("/api/docs")
    assert response.status == 200
    assert "text/html" in response.headers["Content-Type"]
    page = await response.text()
    assert "/api/openapi.json" in page
    assert not re.search(r"(?:https?:)?//", page), "the page must not load anything from another origin"
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(referenced) == 3, referenced  # the style sheet, the script, the icon
    expected = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
    for url in referenced:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await client.get(url)
        assert asset.status == 200, url
        assert asset.headers["Content-Type"].startswith(expected[url[url.rindex(".") :]]), url
        body = await asset.read()
        assert len(body) > 1000, url
    bundle = await (await client.get("/api/docs/swagger-ui-bundle.js")).text()
    assert "SwaggerUIBundle" in bundle
    assert re.search(r'PACKAGE_VERSION:"5\.', bundle), "Swagger UI 5 or later is needed to render OpenAPI 3.1"


async def test_only_swagger_uis_own_files_are_served(client) -> None:
    for name in ("swagger-initializer.js", "LICENSE", "..%2F..%2Fcore.py", "swagger-editor-bundle.js"):
        response = await client.get(f"/api/docs/{name}")
        assert response.status == 404, name
        assert (await response.json())["error"]


# Lists without skip/limit are bare arrays, lists with them are pages (docs/api-reference.md, "Lists").
ARRAYS = [
    "/api/plans",
    "/api/dashboard/agents",
    "/api/dashboard/providers",
    "/api/dashboard/providers/registry",
    "/api/dashboard/api-keys",
    "/api/dashboard/analytics/usage",
]
PAGES = ["/api/dashboard/calls", "/api/dashboard/models/search", "/api/admin/organizations"]


async def test_the_document_says_which_lists_are_arrays_and_which_are_pages(client) -> None:
    spec = await (await client.get("/api/openapi.json")).json()

    def schema(path: str) -> dict:
        found = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        while "$ref" in found:
            found = spec["components"]["schemas"][found["$ref"].rsplit("/", 1)[-1]]
        return found

    for path in ARRAYS:
        assert schema(path)["type"] == "array", path
    for path in PAGES:
        assert {"items", "total", "skip", "limit"} <= set(schema(path)["properties"]), path
