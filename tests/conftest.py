"""Shared fixtures: a small synthetic shop trained once per session, and a Redis URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FAST_CONFIG = {
    "vae": {"epochs": 15, "patience": 15, "hidden": 200, "latent": 64, "batch_size": 200},
    "item_ae": {"epochs": 15, "title_buckets": 256},
    "ease": {"lambdas": [100.0, 500.0], "attribute_weights": [0.0, 1.0]},
}


@pytest.fixture(scope="session")
def shop():
    from models.synthetic import ShopConfig, generate

    return generate(ShopConfig(n_users=1200, n_items=300, seed=11))


@pytest.fixture(scope="session")
def trained(shop, tmp_path_factory):
    """(TrainResult, artifacts dir) of the synthetic shop, published as DIR/current."""
    from models.config import TrainConfig
    from models.pipeline import run

    out = tmp_path_factory.mktemp("artifacts")
    result = run(shop, TrainConfig.from_dict(FAST_CONFIG), out_dir=out, log=lambda m: None)
    return result, out


@pytest.fixture(scope="session")
def artifacts_dir(trained) -> Path:
    return trained[1]


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("SHOPREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
