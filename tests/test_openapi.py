"""The OpenAPI 3.1 document: valid, and listing every endpoint of the API reference with its schemas."""

from __future__ import annotations

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
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyAuth"}
    for method, path in ENDPOINTS:
        operation = spec["paths"][path][method]
        success = next(code for code in operation["responses"] if code.startswith("2"))
        assert "content" in operation["responses"][success], f"{method} {path} has no response schema"
        if method in ("post", "patch"):
            assert operation["requestBody"]["required"] is True, f"{method} {path} has no request schema"
        if path.startswith("/api/dashboard/"):
            assert {"bearerAuth": []} in operation["security"] and {"apiKeyAuth": []} in operation["security"], path


async def test_swagger_ui_points_at_the_document(client) -> None:
    response = await client.get("/api/docs")
    assert response.status == 200
    assert "text/html" in response.headers["Content-Type"]
    assert "/api/openapi.json" in await response.text()


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
