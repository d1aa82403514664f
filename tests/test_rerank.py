"""Re-ranking after relevance: diversity (MMR) and business rules (boost / bury), in numpy and
through the API."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.scoring import rerank
from app.scoring.rerank import intra_list_diversity, relevance_scale

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=2, max_size=60), st.data())
def test_a_boost_never_moves_an_item_down_and_a_bury_never_up(scores, data):
    """Whatever the sign of the scores: factor > 1 keeps or raises an item's place, < 1 keeps or
    lowers it."""
    scores = np.array(scores, np.float32)
    target = data.draw(st.integers(0, len(scores) - 1))
    factor = data.draw(st.floats(0, 100, allow_nan=False))
    relevance = relevance_scale(scores)
    assert relevance.min() > 0 and relevance.max() <= 1
    base = list(rerank.order(relevance, len(scores), diversity=0, vectors=None))
    boosted = relevance.copy()
    boosted[target] *= factor
    after = list(rerank.order(boosted, len(scores), diversity=0, vectors=None))
    if factor >= 1:
        assert after.index(target) <= base.index(target)
    else:
        assert after.index(target) >= base.index(target)


def test_factors_multiply_per_attribute_value():
    values = {"brand": ["acme", "other", None], "category": ["mugs", "mugs", "mugs"]}
    got = rerank.factors(values, {"brand": {"acme": 2.0}, "category": {"mugs": 0.5}})
    assert np.allclose(got, [1.0, 0.5, 0.5])


def test_diversity_zero_is_the_relevance_order_and_one_spreads_the_list():
    rng = np.random.default_rng(3)
    # Two tight clusters; the five most relevant items are all in the first one.
    centres = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    cluster = np.array([0] * 5 + [1] * 5)
    vectors = centres[cluster] + 0.01 * rng.standard_normal((10, 2)).astype(np.float32)
    relevance = relevance_scale(np.linspace(1, 0, 10).astype(np.float32))
    plain = rerank.order(relevance, 4, diversity=0.0, vectors=vectors)
    assert list(plain) == [0, 1, 2, 3]
    mixed = rerank.order(relevance, 4, diversity=0.5, vectors=vectors)
    assert mixed[0] == 0 and set(cluster[mixed]) == {0, 1}
    assert intra_list_diversity(vectors[mixed]) > intra_list_diversity(vectors[plain])


def test_intra_list_diversity_is_the_mean_pairwise_cosine_distance():
    same = np.ones((3, 4), np.float32)
    assert intra_list_diversity(same) == 0.0
    orthogonal = np.eye(3, dtype=np.float32)
    assert intra_list_diversity(orthogonal) == 1.0


async def _items(client, **body):
    answer = await client.post("/v1/recommendations", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


async def test_diversity_spreads_a_users_list_and_keeps_the_filters(client, trained):
    from app.scoring.artifact import load
    from app.scoring.recommender import Recommender

    result, out = trained
    recommender = Recommender(load(out / "current"))
    history = result.data.item_ids[:6]
    plain = await _items(client, items=history, k=10)
    diverse = await _items(client, items=history, k=10, diversity=0.7)
    assert {i["item_id"] for i in plain} != {i["item_id"] for i in diverse}

    def ild(items):
        idx = recommender.known_ids([i["item_id"] for i in items])
        return intra_list_diversity(recommender.item_vectors(idx))

    assert ild(diverse) > ild(plain)
    # The best item stays first: MMR's first pick is the most relevant one.
    assert diverse[0]["item_id"] == plain[0]["item_id"]
    # Applied after the filters and the exclusions.
    filtered = await _items(client, items=history, k=10, diversity=0.7, filters={"category": ["mugs"]})
    assert filtered and all(i["category"] == "mugs" for i in filtered)
    assert not {i["item_id"] for i in diverse} & set(history)


async def test_boost_and_bury_by_brand_on_post_and_get(client, trained):
    result, _ = trained
    user = result.data.user_ids[0]
    plain = await _items(client, user_id=user, k=20)
    brands = [i["brand"] for i in plain]
    # A brand that appears low in the list rises with a boost; the top brand sinks when buried.
    low = next(b for b in reversed(brands) if b is not None and b != brands[0])
    boosted = await _items(client, user_id=user, k=20, boost={"brand": {low: 3.0}})
    first_low = brands.index(low)
    assert [i["brand"] for i in boosted].index(low) < first_low
    buried = await _items(client, user_id=user, k=20, boost={"brand": {brands[0]: 0.0}})
    assert buried[0]["brand"] != brands[0]
    got = await client.get(f"/v1/users/{user}/recommendations", params={"k": 20, "boost": f"brand:{low}:3"})
    assert got.status_code == 200, got.text
    assert [i["item_id"] for i in got.json()["items"]] == [i["item_id"] for i in boosted]


async def test_bad_rerank_parameters_are_422_with_the_field_named(client, trained):
    result, _ = trained
    items = result.data.item_ids[:3]
    for body in (
        {"diversity": 1.5},
        {"diversity": "0.5"},
        {"boost": {"color": {"red": 2}}},
        {"boost": {"brand": {"acme": 101}}},
        {"boost": {"brand": {"acme": -1}}},
    ):
        answer = await client.post("/v1/recommendations", json={"items": items, **body})
        assert answer.status_code == 422, body
        assert next(iter(body)) in answer.text
    user = result.data.user_ids[0]
    for rule in ("brand:acme", "color:red:2", "brand:acme:x"):
        answer = await client.get(f"/v1/users/{user}/recommendations", params={"boost": rule})
        assert answer.status_code == 422, rule
        assert "boost" in answer.text
