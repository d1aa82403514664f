"""Settings: .env.example documents every variable; bad values fail fast; limits apply."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings
from tests.conftest import app_client

ROOT = Path(__file__).resolve().parents[1]


def test_env_example_lists_every_setting():
    documented = set(re.findall(r"^(SHOPREC_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    expected = {f"SHOPREC_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected


def test_bad_settings_fail_fast():
    with pytest.raises(ValidationError, match="SHOPREC_REDIS_URL must start with"):
        Settings(redis_url="localhost:6379")
    with pytest.raises(ValidationError):
        Settings(max_k=0)


def test_environment_is_read(monkeypatch):
    monkeypatch.setenv("SHOPREC_MAX_K", "50")
    assert Settings().max_k == 50


async def test_configured_limits_are_enforced(settings_factory, redis_client):
    async with app_client(settings_factory(max_k=5, max_id_length=8, max_batch=2)) as http:
        too_many = await http.post("/v1/recommendations", json={"k": 6})
        assert too_many.status_code == 422 and "k must be at most 5" in too_many.text
        # The same rule on every route that takes k (similar items used to clamp it silently).
        for path in ("/v1/users/u/recommendations", "/v1/items/P00001/similar"):
            over = await http.get(path, params={"k": 6})
            assert over.status_code == 422 and "k must be at most 5" in over.text, path
            assert (await http.get(path, params={"k": 5})).status_code == 200, path
        long_id = await http.post("/v1/feedback", json={"user_id": "u" * 9, "item_id": "i", "event": "view"})
        assert long_id.status_code == 422 and "user_id longer than 8" in long_id.text
        events = [{"user_id": "u", "item_id": "i", "event": "view"}] * 3
        assert (await http.post("/v1/feedback/batch", json={"events": events})).status_code == 422


async def test_cors_is_off_by_default_and_configurable(settings_factory, redis_client):
    for origins, expected in (([], None), (["https://shop.example"], "https://shop.example")):
        async with app_client(settings_factory(cors_origins=origins)) as http:
            response = await http.get("/healthz", headers={"origin": "https://shop.example"})
            assert response.headers.get("access-control-allow-origin") == expected


async def test_cors_preflight_allows_every_method_the_api_has(settings_factory, redis_client):
    origin = "https://shop.example"
    async with app_client(settings_factory(cors_origins=[origin])) as http:
        methods = {
            m.upper() for ops in (await http.get("/openapi.json")).json()["paths"].values() for m in ops
        }
        assert methods == {"GET", "POST", "PUT", "DELETE"}
        for method in sorted(methods):
            preflight = await http.options(
                "/v1/items/x",
                headers={
                    "origin": origin,
                    "access-control-request-method": method,
                    "access-control-request-headers": "content-type, x-api-key",
                },
            )
            assert preflight.status_code == 200, (method, preflight.text)
            assert method in preflight.headers["access-control-allow-methods"]
