"""Redis down: recommendations keep answering from the artifact, feedback says 503."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import httpx
import pytest

from tests.conftest import app_client, free_port


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
    ready = await http.get("/readyz")
    assert ready.status_code == 503 and "redis" in ready.json()["error"]["message"]


async def test_no_redis_at_all(settings_factory):
    async with app_client(settings_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0")) as http:
        await check_degraded(http)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
async def test_redis_stopped_mid_test_then_back(settings_factory, tmp_path):
    port = free_port()
    cmd = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        _wait_for(port)
        async with app_client(settings_factory(redis_url=f"redis://127.0.0.1:{port}/0")) as http:
            ok = await http.post("/v1/feedback", json={"user_id": "u", "item_id": "i", "event": "view"})
            assert ok.status_code == 202
            server.kill()
            server.wait()
            await check_degraded(http)
            server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
            _wait_for(port)
            again = await http.post("/v1/feedback", json={"user_id": "u", "item_id": "i", "event": "view"})
            assert again.status_code == 202  # recovers by itself
            assert (await http.get("/readyz")).status_code == 200
    finally:
        server.kill()
        server.wait()


def _wait_for(port: int) -> None:
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis on {port} did not start")
