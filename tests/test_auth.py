"""API keys and roles: 401 without or with a wrong key, 403 with too low a role."""

from __future__ import annotations

import logging

from tests.conftest import app_client

KEYS = {"r-key": "reader", "w-key": "writer", "a-key": "admin"}
EVENT = {"user_id": "u", "item_id": "i", "event": "view"}


async def test_roles(settings_factory, redis_client, caplog):
    caplog.set_level(logging.INFO)
    async with app_client(settings_factory(api_keys=KEYS, log_requests=True)) as http:
        # Reads are open unless read_requires_key.
        assert (await http.post("/v1/recommendations", json={"k": 1})).status_code == 200
        missing = await http.post("/v1/feedback", json=EVENT)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "unauthorized"
        wrong = await http.post("/v1/feedback", json=EVENT, headers={"x-api-key": "nope"})
        assert wrong.status_code == 401 and "nope" not in wrong.text
        reader = await http.post("/v1/feedback", json=EVENT, headers={"x-api-key": "r-key"})
        assert reader.status_code == 403 and "writer" in reader.json()["error"]["message"]
        for key in ("w-key", "a-key"):
            ok = await http.post("/v1/feedback", json=EVENT, headers={"x-api-key": key})
            assert ok.status_code == 202
        assert (await http.get("/v1/admin/models", headers={"x-api-key": "w-key"})).status_code == 403
        assert (await http.get("/v1/admin/models", headers={"x-api-key": "a-key"})).status_code == 200
    assert "w-key" not in caplog.text and "a-key" not in caplog.text


async def test_reads_can_require_a_key(settings_factory, redis_client):
    settings = settings_factory(api_keys=KEYS, read_requires_key=True)
    async with app_client(settings) as http:
        assert (await http.get("/v1/model")).status_code == 401
        assert (await http.get("/v1/model", headers={"x-api-key": "r-key"})).status_code == 200
        assert (await http.get("/healthz")).status_code == 200
        # Every reading route checks the key first: a keyless request is 401 whatever its body.
        for method, path, body in [
            ("POST", "/v1/recommendations", {"k": 1}),
            ("POST", "/v1/recommendations", {"k": "not a number"}),
            ("GET", "/v1/users/u/recommendations", None),
            ("GET", "/v1/items/no-such-item", None),
            ("GET", "/v1/items/no-such-item/similar", None),
        ]:
            keyless = await http.request(method, path, json=body)
            assert keyless.status_code == 401, (method, path, keyless.text)
            assert keyless.headers["www-authenticate"] == "ApiKey"
            wrong = await http.request(method, path, json=body, headers={"x-api-key": "nope"})
            assert wrong.status_code == 401
        read = await http.post("/v1/recommendations", json={"k": 1}, headers={"x-api-key": "r-key"})
        assert read.status_code == 200
        invalid = await http.post("/v1/recommendations", json={"k": "x"}, headers={"x-api-key": "r-key"})
        assert invalid.status_code == 422
        similar = await http.get("/v1/items/no-such-item/similar", headers={"x-api-key": "w-key"})
        assert similar.status_code == 404


async def test_no_keys_means_open(client):
    assert (await client.get("/v1/admin/models")).status_code == 200


def _security(spec: dict) -> dict[str, list]:
    """'METHOD path' -> the operation's security requirements."""
    return {
        f"{method.upper()} {path}": operation.get("security", [])
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }


async def test_openapi_security_says_what_the_deployment_requires(settings_factory, redis_client):
    """The Swagger UI's "Authorize" button needs a security scheme; each operation that checks
    a key names it, as required where this deployment refuses a request without a key and as
    optional ([{}, scheme]) where it does not. Health and readiness take no key."""
    reader, writer = [{"ApiKeyAuth": ["reader"]}], [{"ApiKeyAuth": ["writer"]}]
    cases = [
        ({}, [{}, *reader], [{}, *writer]),
        ({"api_keys": KEYS}, [{}, *reader], writer),
        ({"api_keys": KEYS, "read_requires_key": True}, reader, writer),
    ]
    for overrides, reads, writes in cases:
        async with app_client(settings_factory(**overrides)) as http:
            spec = (await http.get("/openapi.json")).json()
        scheme = spec["components"]["securitySchemes"]["ApiKeyAuth"]
        assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
        security = _security(spec)
        for operation in ("POST /v1/recommendations", "GET /v1/items/{item_id}", "GET /v1/model"):
            assert security[operation] == reads, (overrides, operation)
        for operation in ("POST /v1/feedback", "PUT /v1/items/{item_id}"):
            assert security[operation] == writes, (overrides, operation)
        admin = security["POST /v1/admin/rollback"]
        assert admin == ([{}, {"ApiKeyAuth": ["admin"]}] if not overrides else [{"ApiKeyAuth": ["admin"]}])
        assert security["GET /healthz"] == security["GET /readyz"] == []
        assert {k for k, v in security.items() if not v} == {"GET /healthz", "GET /readyz"}


async def test_every_route_that_takes_a_key_documents_401_and_403(client):
    """And every route that needs the model documents 503 (no model loaded)."""
    spec = (await client.get("/openapi.json")).json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if operation.get("security"):
                assert {"401", "403"} <= codes, (method, path)
            if path.startswith(("/v1/items", "/v1/users", "/v1/recommendations", "/v1/model")):
                assert "503" in codes, (method, path)
