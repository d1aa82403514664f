"""Redis down: recommendations keep answering from the artifact, feedback says 503, and the
process stays ready (its readiness body says Redis is down)."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest

from tests.conftest import app_client
from tools.server import free_port


async def check_degraded(http: httpx.AsyncClient) -> None:
    recs = await http.get("/v1/users/anyone/recommendations")
    assert recs.status_code == 200
    assert recs.json()["live_feedback"] is False
    session = await http.post("/v1/recommendations", json={"user_id": "anyone", "k": 3})
    assert session.status_code == 200 and session.json()["live_feedback"] is False
    feedback = await http.post("/v1/feedback", json={"user_id": "u", "item_id": "i", "event": "view"})
    assert feedback.status_code == 503
    assert feedback.headers["retry-after"] == "5"
    assert feedback.json()["error"]["code"] == "store_unavailable"
    # Still ready (it serves recommendations), so a Redis outage does not take every replica
    # out of the load balancer at once; the body says Redis is down.
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["redis"] == "down" and ready.json()["degraded"] is True


async def test_no_redis_at_all(settings_factory):
    async with app_client(settings_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0")) as http:
        await check_degraded(http)


@pytest.mark.slow
async def test_redis_stopped_mid_test_then_back(settings_factory, private_redis):
    async with app_client(settings_factory(redis_url=private_redis.url)) as http:
        ok = await http.post("/v1/feedback", json={"user_id": "u", "item_id": "i", "event": "view"})
        assert ok.status_code == 202
        private_redis.kill()
        await check_degraded(http)
        private_redis.start()
        again = await http.post("/v1/feedback", json={"user_id": "u", "item_id": "i", "event": "view"})
        assert again.status_code == 202  # recovers by itself
        assert (await http.get("/readyz")).json() | {"model_version": None} == {
            "status": "ready",
            "model_version": None,
            "redis": "up",
            "degraded": False,
        }


@pytest.mark.slow
async def test_redis_error_answers_are_503_logged_and_counted(settings_factory, private_redis, caplog):
    """Redis answering with an error (here OOM: maxmemory 1 byte, no eviction) is an outage of
    the store, not a bug: 503 with Retry-After, one log line, a counter in /metrics."""
    shoprec_log = logging.getLogger("shoprec")
    shoprec_log.addHandler(caplog.handler)  # the app's loggers do not propagate to the root
    try:
        async with app_client(settings_factory(redis_url=private_redis.url)) as http:
            event = {"user_id": "u", "item_id": "P00001", "event": "view"}
            assert (await http.post("/v1/feedback", json=event)).status_code == 202
            private_redis.client().config_set("maxmemory", 1)
            for _ in range(3):
                refused = await http.post("/v1/feedback", json=event)
                assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
                assert refused.json()["error"]["code"] == "store_error"
                assert "OOM" in refused.json()["error"]["message"]
            catalog = await http.put("/v1/items/OOM-ITEM", json={"title": "x"})
            assert catalog.status_code == 503 and catalog.json()["error"]["code"] == "store_error"
            # Reads still work: live history included, and the process stays ready.
            recs = await http.get("/v1/users/u/recommendations")
            assert recs.status_code == 200 and recs.json()["live_feedback"] is True
            assert (await http.get("/readyz")).json()["redis"] == "up"
            # 3 feedback + 1 catalog write + the recommendation's attribution record, which
            # is written after the answer (200): counted once that write has failed.
            counted = 'shoprec_redis_errors_total{code="store_error"} 5.0'
            deadline = time.monotonic() + 5
            while (
                counted not in (metrics := (await http.get("/metrics")).text) and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.01)
            assert counted in metrics
    finally:
        shoprec_log.removeHandler(caplog.handler)
    lines = [r.getMessage() for r in caplog.records if '"redis_error"' in r.getMessage()]
    assert len(lines) == 1 and "POST /v1/feedback" in lines[0] and "OOM" in lines[0]  # then throttled
