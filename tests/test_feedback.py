"""Feedback into the real Redis: stream record, idempotency, batches, live personalization."""

from __future__ import annotations

import numpy as np


def store(client):
    return client.app.state.shoprec.store


async def test_feedback_is_recorded_in_the_stream(client, trained):
    result, _ = trained
    event = {
        "user_id": "u1",
        "item_id": result.data.item_ids[0],
        "event": "click",
        "event_id": "e1",
        "timestamp": "2026-11-27T10:00:00Z",
    }
    response = await client.post("/v1/feedback", json=event)
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0, "event_id": "e1"}
    entries, _ = await store(client).read_events()
    assert len(entries) == 1
    fields = entries[0]
    assert fields["user_id"] == "u1" and fields["event"] == "click" and fields["event_id"] == "e1"
    assert float(fields["timestamp"]) == 1795773600.0
    assert fields["model_version"] and float(fields["received_at"]) > 0


async def test_retried_event_is_acknowledged_once(client):
    event = {"user_id": "u2", "item_id": "NEW-ITEM", "event": "purchase", "event_id": "same"}
    first = await client.post("/v1/feedback", json=event)
    second = await client.post("/v1/feedback", json=event)
    assert first.status_code == second.status_code == 202
    assert first.json() == {"accepted": 1, "duplicates": 0, "event_id": "same"}
    assert second.json() == {"accepted": 1, "duplicates": 1, "event_id": "same"}  # acknowledged again
    events, _ = await store(client).read_events()
    assert len(events) == 1  # an unknown item is kept for retraining
    generated = (await client.post("/v1/feedback", json={**event, "event_id": None})).json()
    assert len(generated["event_id"]) == 32


async def test_bad_events_get_clear_422(client):
    cases = [
        {"user_id": "u", "item_id": "i", "event": "rating"},
        {"user_id": "u", "item_id": "i", "event": "rating", "value": 9},
        {"user_id": "u", "item_id": "i", "event": "like"},
        {"user_id": "u", "item_id": "i", "event": "view", "timestamp": "1800-01-01T00:00:00Z"},
        {"user_id": "", "item_id": "i", "event": "view"},
    ]
    for body in cases:
        response = await client.post("/v1/feedback", json=body)
        assert response.status_code == 422, body
    nan = await client.post(
        "/v1/feedback",
        content=b'{"user_id": "u", "item_id": "i", "event": "rating", "value": NaN}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422


async def test_batch_is_all_or_nothing(client):
    good = [{"user_id": f"u{i}", "item_id": "x", "event": "view", "event_id": f"b{i}"} for i in range(5)]
    bad = [
        *good[:2],
        {"user_id": "u", "item_id": "x", "event": "nope"},
        *good[2:],
        {"user_id": "u", "item_id": "x", "event": "rating"},
    ]
    rejected = await client.post("/v1/feedback/batch", json={"events": bad})
    assert rejected.status_code == 422
    indices = {d["loc"][2] for d in rejected.json()["error"]["details"]}
    assert indices == {2, 6}
    assert (await store(client).read_events())[0] == []
    accepted = await client.post("/v1/feedback/batch", json={"events": good})
    assert accepted.status_code == 202
    assert accepted.json() == {"accepted": 5, "duplicates": 0, "event_ids": [f"b{i}" for i in range(5)]}
    again = (await client.post("/v1/feedback/batch", json={"events": good})).json()
    assert again["accepted"] == 5 and again["duplicates"] == 5  # acknowledged, stored once
    events, cursor = await store(client).read_events()
    assert sorted(e["event_id"] for e in events) == [f"b{i}" for i in range(5)]
    assert len({e["stream"] for e in events}) > 1  # five users spread over shards
    more = [*good[:2], {**good[0], "event_id": "later"}]
    mixed = (await client.post("/v1/feedback/batch", json={"events": more})).json()
    assert mixed["accepted"] == 3 and mixed["duplicates"] == 2
    newer, _ = await store(client).read_events(cursor)
    assert [e["event_id"] for e in newer] == ["later"]
    too_many = [{"user_id": "u", "item_id": "x", "event": "view"}] * 1001
    assert (await client.post("/v1/feedback/batch", json={"events": too_many})).status_code == 422


async def test_purchase_changes_the_next_recommendations(client, trained):
    """Live personalization: after u buys X, X leaves u's list and X's neighbour rises."""
    result, _ = trained
    recommender = client.app.state.shoprec.recommender
    user = result.data.user_ids[result.data.train_users[0]]
    seen = set(recommender.training_history(user)[0].tolist())
    ease = recommender.scorer.components["ease"].matrix
    # X: an unseen item whose strongest EASE neighbour Y is also unseen.
    for x in recommender.popular_order:
        row = ease[int(x)]
        if int(x) in seen or row.nnz == 0:
            continue
        y = int(row.indices[np.argmax(row.data)])
        if y not in seen:
            break
    x_id, y_id = result.data.item_ids[int(x)], result.data.item_ids[y]

    def rank_of(body, item_id):
        ids = [i["item_id"] for i in body["items"]]
        return ids.index(item_id) if item_id in ids else len(ids)

    before = (await client.get(f"/v1/users/{user}/recommendations", params={"k": 300})).json()
    response = await client.post("/v1/feedback", json={"user_id": user, "item_id": x_id, "event": "purchase"})
    assert response.status_code == 202
    after = (await client.get(f"/v1/users/{user}/recommendations", params={"k": 300})).json()
    assert x_id not in [i["item_id"] for i in after["items"]]
    assert rank_of(after, y_id) < rank_of(before, y_id), (
        rank_of(before, y_id),
        rank_of(after, y_id),
    )
    print(f"live personalization: {y_id} rank {rank_of(before, y_id)} -> {rank_of(after, y_id)}")
    assert after["live_feedback"] is True


async def test_a_one_star_item_is_not_recommended_back(client):
    """A low rating carries no positive signal, but the item was seen all the same."""
    top = (await client.get("/v1/users/critic/recommendations", params={"k": 1})).json()["items"][0]
    rating = {"user_id": "critic", "item_id": top["item_id"], "event": "rating", "value": 1}
    assert (await client.post("/v1/feedback", json=rating)).status_code == 202
    after = (await client.get("/v1/users/critic/recommendations", params={"k": 50})).json()
    assert top["item_id"] not in [i["item_id"] for i in after["items"]]
    assert after["strategy"] == "popular"  # nothing positive to personalise on yet
