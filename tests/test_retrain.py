"""The loop: feedback -> archive -> retrain -> quality gate -> publish -> hot reload."""

from __future__ import annotations

import asyncio
import json

import pytest

from app.scoring import artifact
from models import archive
from models import retrain as retrain_module
from models.config import TrainConfig
from models.pipeline import run
from models.retrain import RetrainOptions, retrain
from models.synthetic import ShopConfig, generate
from tests.conftest import FAST_CONFIG, app_client, wait_subscribed

SHOP = {"n_users": 500, "n_items": 150, "seed": 5}


@pytest.fixture
def base_dir(tmp_path):
    out = tmp_path / "artifacts"
    config = TrainConfig.from_dict({**FAST_CONFIG, "vae": {**FAST_CONFIG["vae"], "epochs": 5}})
    source = {"kind": "synthetic", "shop": SHOP}
    run(generate(ShopConfig(**SHOP)), config, out_dir=out, log=lambda m: None, source=source)
    return out


def options(base_dir, tmp_path, redis_url, prefix, **kw):
    return RetrainOptions(
        artifacts_dir=base_dir,
        archive_dir=tmp_path / "archive",
        redis_url=redis_url,
        redis_prefix=prefix,
        **kw,
    )


async def wait_for_version(http, version):
    for _ in range(200):
        if (await http.get("/v1/model")).json()["model_version"] == version:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"API did not reload {version}")


@pytest.mark.slow
async def test_feedback_retrain_reload(base_dir, tmp_path, settings_factory, redis_client, redis_url, prefix):
    async with app_client(settings_factory(artifacts_dir=base_dir)) as http:
        first = (await http.get("/v1/model")).json()["model_version"]
        items = [
            i["item_id"] for i in (await http.post("/v1/recommendations", json={"k": 8})).json()["items"]
        ]
        events = [
            {"user_id": "loop-user", "item_id": item, "event": "purchase", "event_id": f"loop-{n}"}
            for n, item in enumerate(items)
        ]
        events.append({"user_id": "loop-user", "item_id": "BRAND-NEW", "event": "view", "event_id": "new"})
        assert (await http.post("/v1/feedback/batch", json={"events": events})).status_code == 202
        lamp = {"title": "Willow nordic lamp", "category": "lighting", "brand": "Willow", "price": 30.0}
        assert (await http.put("/v1/items/CATALOG-NEW", json=lamp)).status_code == 200
        await wait_subscribed(redis_client, prefix)

        outcome = await asyncio.to_thread(retrain, options(base_dir, tmp_path, redis_url, prefix), log=print)
        assert outcome.published and outcome.events == 9
        await wait_for_version(http, outcome.version)
        assert outcome.version != first

        loaded = artifact.load(base_dir)
        assert "loop-user" in loaded.users
        catalog = {item["item_id"]: item for item in loaded.items}
        assert catalog["CATALOG-NEW"]["category"] == "lighting"  # the catalog change is trained on
        assert loaded.manifest.consumed["archived_events"] == 9
        store = http.app.state.shoprec.store
        assert (await store.read_events())[0] == []  # trimmed after archiving
        assert len(archive.read(tmp_path / "archive")) == 9

        # The quality gate keeps a worse version on disk, unpublished; --force publishes.
        strict = options(base_dir, tmp_path, redis_url, prefix, max_drop=-0.5)
        kept = await asyncio.to_thread(retrain, strict, log=print)
        assert not kept.published and "use --force" in kept.reason
        assert (base_dir / kept.version / "manifest.json").exists()
        assert artifact.resolve(base_dir).name == outcome.version
        forced = await asyncio.to_thread(
            retrain, options(base_dir, tmp_path, redis_url, prefix, max_drop=-0.5, force=True), log=print
        )
        assert forced.published
        await wait_for_version(http, forced.version)


@pytest.mark.slow
async def test_a_crash_after_archiving_loses_nothing(
    base_dir, tmp_path, settings_factory, redis_client, redis_url, prefix, monkeypatch
):
    async with app_client(settings_factory(artifacts_dir=base_dir)) as http:
        events = [
            {"user_id": f"c{n}", "item_id": "x", "event": "view", "event_id": f"c{n}"} for n in range(20)
        ]
        assert (await http.post("/v1/feedback/batch", json={"events": events})).status_code == 202

    def crash(*args, **kwargs):
        raise RuntimeError("killed during training")

    monkeypatch.setattr(retrain_module, "run", crash)
    with pytest.raises(RuntimeError):
        await asyncio.to_thread(retrain, options(base_dir, tmp_path, redis_url, prefix), log=print)
    monkeypatch.undo()
    serving = json.loads((artifact.resolve(base_dir) / "manifest.json").read_text())
    assert serving["consumed"] == {}  # still the old model
    outcome = await asyncio.to_thread(retrain, options(base_dir, tmp_path, redis_url, prefix), log=print)
    assert outcome.published and outcome.events == 0  # already archived, not in the stream
    assert artifact.load(base_dir).manifest.consumed["archived_events"] == 20
