"""Exploration slots: items with little exposure get a share of the list, chosen by their
collaborative score, counted in Redis, and capped."""

from __future__ import annotations

import numpy as np
import pytest

from app.scoring.artifact import load
from app.scoring.recommender import Explore, Recommender
from tests.conftest import app_client

NEW_ITEM = {"title": "Walnut serving board", "category": "kitchen", "brand": "Elm", "price": 19.0}


def _low_popularity(trained) -> float:
    """A popularity bound that makes about a fifth of the shop's items low-exposure."""
    result, _ = trained
    return float(np.quantile(result.arrays["popularity"], 0.2))


def _history(trained) -> list[str]:
    return trained[0].data.item_ids[:6]


async def _list(client, **body):
    answer = await client.post("/v1/recommendations", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def test_explored_items_are_the_best_low_exposure_items_by_the_collaborative_score(trained):
    result, out = trained
    recommender = Recommender(load(out / "current"))
    bound = _low_popularity(trained)
    history = {int(i): 4.0 for i in recommender.known_ids(_history(trained))}
    plain = recommender.recommend(history, k=10, exclude=history)
    explored = recommender.recommend(history, k=10, exclude=history, explore=Explore(0.3, bound))
    assert explored.explored is not None and explored.explored.sum() == 3
    picked = explored.item_idx[explored.explored]
    # The other slots keep the plain list's order; the explored ones are spread over the list.
    assert list(explored.item_idx[~explored.explored]) == list(plain.item_idx[:7])
    assert list(np.flatnonzero(explored.explored)) == [2, 5, 7]
    # They are the best low-exposure items by the decoder's score u e + b, outside the list.
    pool = np.flatnonzero(np.asarray(result.arrays["popularity"]) <= bound)
    pool = pool[~np.isin(pool, [*history, *plain.item_idx[:7]])]
    from app.scoring.scorer import histories_matrix

    matrix = histories_matrix(
        [(np.array(list(history)), np.full(len(history), 4.0, np.float32))],
        len(recommender.catalog.a["item_ids"]),
    )
    scores = recommender.scorer.components["vae"].score(matrix, None, pool)[0]
    assert set(picked) == set(pool[np.argsort(-scores)[:3]])
    assert set(picked) <= set(recommender.low_exposure(bound))


async def test_a_new_catalog_item_is_explored_and_its_exposure_counted(
    settings_factory, redis_client, prefix
):
    settings = settings_factory(explore_max_popularity=0, exploration=0.1)
    async with app_client(settings) as client:
        assert (await client.put("/v1/items/NEW-BOARD", json=NEW_ITEM)).status_code == 200
        items = await _list(client, items=["P00001", "P00002"], k=10)  # the server's share: 1 slot
        explored = [i for i in items if i["explored"]]
        assert [i["item_id"] for i in explored] == ["NEW-BOARD"]  # the only item nobody had
        assert explored[0]["title"] == NEW_ITEM["title"]
        counts = await redis_client.hgetall(f"{prefix}:{{exposure}}:counts")
        assert counts == {"NEW-BOARD": "1"}
        # A request that asks for none gets none, and nothing is counted.
        items = await _list(client, items=["P00001", "P00002"], k=10, exploration=0)
        assert not any(i["explored"] for i in items)
        assert await redis_client.hgetall(f"{prefix}:{{exposure}}:counts") == {"NEW-BOARD": "1"}
        # Filters hold for explored items too: NEW-BOARD is not a mug.
        mugs = await _list(client, items=["P00001"], k=10, filters={"category": ["mugs"]})
        assert all(i["category"] == "mugs" for i in mugs) and not any(i["explored"] for i in mugs)


async def test_an_item_shown_the_cap_times_is_not_explored_again(settings_factory, redis_client, trained):
    bound = _low_popularity(trained)
    body = {"items": _history(trained), "k": 10, "exploration": 0.2}
    settings = settings_factory(
        explore_max_popularity=int(bound), explore_exposure_cap=2, explore_refresh_s=0
    )
    async with app_client(settings) as client:
        first = {i["item_id"] for i in await _list(client, **body) if i["explored"]}
        second = {i["item_id"] for i in await _list(client, **body) if i["explored"]}
        assert len(first) == 2 and second == first  # the same best items, shown once each
        third = {i["item_id"] for i in await _list(client, **body) if i["explored"]}
        assert len(third) == 2 and not third & first  # shown twice: capped, the next best come
        user = trained[0].data.user_ids[0]
        got = await client.get(f"/v1/users/{user}/recommendations", params={"exploration": 0.3})
        assert sum(i["explored"] for i in got.json()["items"]) == 3
        bad = await client.post("/v1/recommendations", json={**body, "exploration": 1.5})
        assert bad.status_code == 422 and "exploration" in bad.text


@pytest.mark.parametrize(
    "share,k,slots", [(0.0, 10, 0), (0.04, 10, 0), (0.05, 10, 1), (0.2, 10, 2), (1.0, 3, 3)]
)
def test_slots_round_the_share_of_k(share, k, slots):
    assert Explore(share).slots(k) == slots


def test_the_sample_is_drawn_from_old_and_new_low_exposure_items(trained):
    """A large pool is sampled in O(sample): every drawn item is low-exposure, none twice, and a
    new catalog item (an index past the artifact's) can be drawn."""
    _, out = trained
    recommender = Recommender(load(out / "current"))
    recommender.apply_changes({"NEW-BOARD": {"item_id": "NEW-BOARD", **NEW_ITEM}})
    bound = _low_popularity(trained)
    pool = set(recommender.low_exposure(bound).tolist())
    new = recommender.index_of("NEW-BOARD")
    assert new in pool
    drawn_new = False
    for seed in range(200):
        sample = recommender._sample_low_exposure(Explore(0.1, bound, sample=10, seed=seed))
        assert len(set(sample.tolist())) == len(sample) and set(sample.tolist()) <= pool
        drawn_new |= new in sample
    assert drawn_new
