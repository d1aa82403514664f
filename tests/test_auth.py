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


async def test_no_keys_means_open(client):
    assert (await client.get("/v1/admin/models")).status_code == 200
