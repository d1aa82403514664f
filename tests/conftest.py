"""Shared fixtures: a small synthetic shop trained once per session, and a Redis URL."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

FAST_CONFIG = {
    "vae": {"epochs": 15, "patience": 15, "hidden": 200, "latent": 64, "batch_size": 200},
    "item_ae": {"epochs": 60, "title_buckets": 256},
    "ease": {"lambdas": [100.0, 500.0], "attribute_weights": [0.0, 1.0]},
}


SHOP = {"n_users": 1200, "n_items": 300, "seed": 11}
# One purchase of an item that is in no catalog: every item in the log stays recommendable.
RARE_ITEM, RARE_BUYER = "RARE-1", "U00003"


@pytest.fixture(scope="session")
def shop():
    import pandas as pd

    from models.data import Dataset
    from models.synthetic import ShopConfig, generate

    dataset = generate(ShopConfig(**SHOP))
    rare = pd.DataFrame(
        [{"user_id": RARE_BUYER, "item_id": RARE_ITEM, "event": "purchase", "value": 1.0, "timestamp": 1.8e9}]
    )
    return Dataset(pd.concat([dataset.interactions, rare], ignore_index=True), dataset.items)


@pytest.fixture(scope="session")
def trained(shop, tmp_path_factory):
    """(TrainResult, artifacts dir) of the synthetic shop, published as DIR/current."""
    from models.config import TrainConfig
    from models.pipeline import run

    out = tmp_path_factory.mktemp("artifacts")
    source = {"kind": "synthetic", "shop": SHOP}  # so retraining reads the same base data
    result = run(shop, TrainConfig.from_dict(FAST_CONFIG), out_dir=out, log=lambda m: None, source=source)
    return result, out


@pytest.fixture(scope="session")
def artifacts_dir(trained) -> Path:
    return trained[1]


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("SHOPREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def prefix():
    import uuid

    return f"shoprec-test:{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings_factory(artifacts_dir, redis_url, prefix):
    from app.config import Settings

    def make(**overrides):
        values = {
            "artifacts_dir": artifacts_dir,
            "redis_url": redis_url,
            "redis_prefix": prefix,
            "log_requests": False,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def redis_client(redis_url, prefix):
    import redis.asyncio as redis

    client = redis.from_url(redis_url, decode_responses=True)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@contextlib.asynccontextmanager
async def app_client(settings):
    """httpx client against a new app in-process, with its lifespan running."""
    import httpx

    from app.main import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shoprec") as http:
            http.app = app
            yield http


@pytest.fixture
async def client(settings_factory, redis_client):
    async with app_client(settings_factory()) as http:
        yield http


async def wait_subscribed(redis_client, prefix, count=1):
    """Until ``count`` API listeners are subscribed to the models channel."""
    import asyncio

    from app import registry

    for _ in range(200):
        ((_, subscribers),) = await redis_client.pubsub_numsub(registry.channel(prefix))
        if subscribers >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("API listeners did not subscribe")


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test alone, with an append-only file (it may be killed and
    restarted, paused or filled up); killed afterwards."""
    import shutil

    from tools.server import APPEND_ONLY, private_redis

    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    folder = tmp_path / "redis"
    folder.mkdir()
    with private_redis(folder, *APPEND_ONLY) as server:
        yield server
