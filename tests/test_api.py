"""Every endpoint through httpx against the app, with the real Redis."""

from __future__ import annotations

import numpy as np

from app.schemas import RecommendationResponse, RecommendedItem, SimilarItem, SimilarResponse
from app.scoring import artifact


async def test_health_ready_and_model(client, artifacts_dir):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    version = artifact.resolve(artifacts_dir).name
    assert ready.json() == {"status": "ready", "model_version": version, "redis": "up", "degraded": False}
    model = (await client.get("/v1/model")).json()
    assert model["model_version"] == version
    assert model["metrics"]["validation"]["blend"]["ndcg@100"] > 0
    assert model["counts"]["users"] > 0


async def test_session_recommendations_exclude_the_given_items(client, trained):
    """Session items stand for purchases by default, and purchases are excluded by default."""
    result, _ = trained
    items = result.data.item_ids[:5]
    response = await client.post("/v1/recommendations", json={"items": items, "k": 100})
    assert response.status_code == 200
    body = response.json()
    ids = [i["item_id"] for i in body["items"]]
    assert len(ids) == 100 and len(set(ids)) == 100
    assert not set(ids) & set(items)
    assert body["strategy"] == "personalized"
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


async def test_session_items_event_and_exclusion_policy(client, trained):
    result, _ = trained
    items = result.data.item_ids[:5]
    every = len(result.data.item_ids)

    async def ids(**body):
        answer = await client.post("/v1/recommendations", json={"items": items, "k": every, **body})
        assert answer.status_code == 200, answer.text
        return {i["item_id"] for i in answer.json()["items"]}

    # Viewed, not bought: the default policy (purchased) lets them come back; seen hides them.
    assert set(items) <= await ids(items_event="view")
    assert not set(items) & await ids(items_event="view", exclude_history="seen")
    assert not set(items) & await ids(items_event="rating")  # a rating means the shopper owns it
    assert set(items) <= await ids(exclude_history="none")
    # The event type sets the weight: a session of views is personalised all the same.
    viewed = await client.post("/v1/recommendations", json={"items": items, "items_event": "view"})
    assert viewed.json()["strategy"] == "personalized"
    impressions = await client.post("/v1/recommendations", json={"items": items, "items_event": "impression"})
    assert impressions.json()["strategy"] == "popular"  # shown, not chosen: no signal
    bad = await client.post("/v1/recommendations", json={"items": items, "exclude_history": "bought"})
    assert bad.status_code == 422


async def test_unknown_items_are_listed_not_errors(client, trained):
    result, _ = trained
    response = await client.post("/v1/recommendations", json={"items": ["nope", result.data.item_ids[0]]})
    assert response.status_code == 200
    assert response.json()["unknown_items"] == ["nope"]


async def test_no_history_is_popular_and_filters_apply(client, trained):
    result, _ = trained
    body = (await client.post("/v1/recommendations", json={"items": ["nope"], "k": 5})).json()
    assert body["strategy"] == "popular"
    pop = result.arrays["popularity"]
    assert body["items"][0]["item_id"] == result.data.item_ids[int(np.argmax(pop))]
    filtered = await client.post(
        "/v1/recommendations",
        json={"k": 20, "filters": {"category": ["mugs"], "max_price": 50}},
    )
    items = filtered.json()["items"]
    assert items and all(i["category"] == "mugs" and i["price"] <= 50 for i in items)


async def test_explain_names_history_items(client, trained):
    result, _ = trained
    history = result.data.item_ids[10:14]
    body = (await client.post("/v1/recommendations", json={"items": history, "k": 5, "explain": True})).json()
    for item in body["items"]:
        assert item["because"] and set(item["because"]) <= set(history)


async def test_exclude_list(client):
    first = (await client.post("/v1/recommendations", json={"k": 3})).json()["items"][0]["item_id"]
    again = (await client.post("/v1/recommendations", json={"k": 3, "exclude": [first]})).json()
    assert first not in [i["item_id"] for i in again["items"]]


async def test_known_and_unknown_users(client, trained):
    result, _ = trained
    user = result.data.user_ids[0]
    body = (await client.get(f"/v1/users/{user}/recommendations", params={"k": 7})).json()
    assert body["strategy"] == "personalized" and len(body["items"]) == 7
    row = result.data.full[0]
    seen = {result.data.item_ids[i] for i in row.indices.tolist()}
    owned = {result.data.item_ids[i] for i, w in zip(row.indices, row.data, strict=True) if w >= 4.0}
    assert owned and seen - owned  # this shopper bought some items and only viewed others
    every = {"k": len(result.data.item_ids)}
    default = (await client.get(f"/v1/users/{user}/recommendations", params=every)).json()["items"]
    assert not {i["item_id"] for i in default} & owned  # bought or rated: hidden by default
    assert seen - owned <= {i["item_id"] for i in default}  # only viewed, clicked, carted: shown
    strict = (
        await client.get(f"/v1/users/{user}/recommendations", params={**every, "exclude_history": "seen"})
    ).json()
    assert not {i["item_id"] for i in strict["items"]} & seen
    anon = (await client.get("/v1/users/never-seen/recommendations")).json()
    assert anon["strategy"] == "popular"
    bad = await client.get(f"/v1/users/{user}/recommendations", params={"min_price": 5, "max_price": 1})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_error"


async def test_user_recommendations_take_exclude_and_explain_as_post_does(client, trained):
    result, _ = trained
    user = result.data.user_ids[0]
    first = (await client.get(f"/v1/users/{user}/recommendations", params={"k": 3})).json()["items"]
    dropped = [first[0]["item_id"], first[1]["item_id"]]
    params = {"k": 3, "exclude": dropped, "explain": "true"}
    again = (await client.get(f"/v1/users/{user}/recommendations", params=params)).json()
    assert not {i["item_id"] for i in again["items"]} & set(dropped)
    history = {result.data.item_ids[i] for i in result.data.full[0].indices.tolist()}
    assert all(item["because"] and set(item["because"]) <= history for item in again["items"])
    posted = await client.post("/v1/recommendations", json={"user_id": user, "k": 3, "exclude": dropped})
    assert [i["item_id"] for i in posted.json()["items"]] == [i["item_id"] for i in again["items"]]


async def test_every_recommendation_answer_is_exactly_the_documented_model(client, trained):
    """Answers are serialised as built, not validated again: each must still be a
    RecommendationResponse, with its fields only (personalized and explained, popular, a known
    user's, one with unknown items), and similar items a SimilarResponse."""
    result, _ = trained
    user, items = result.data.user_ids[0], result.data.item_ids[:3]
    answers = [
        await client.post(
            "/v1/recommendations", json={"items": items, "k": 5, "explain": True, "session_id": "s"}
        ),
        await client.post("/v1/recommendations", json={"k": 5}),
        await client.get(f"/v1/users/{user}/recommendations", params={"k": 5}),
        await client.post("/v1/recommendations", json={"items": ["no-such-item", items[0]], "k": 2}),
    ]
    for answer in answers:
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        body = answer.json()
        parsed = RecommendationResponse.model_validate_json(answer.content, strict=True)
        assert parsed.model_dump(mode="json") == body
        assert set(body) == set(RecommendationResponse.model_fields)
        assert body["items"] and all(set(i) == set(RecommendedItem.model_fields) for i in body["items"])
    assert answers[0].json()["items"][0]["because"] and answers[3].json()["unknown_items"] == ["no-such-item"]
    for by in ("collaborative", "content"):
        answer = await client.get(f"/v1/items/{items[0]}/similar", params={"k": 4, "by": by})
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        parsed = SimilarResponse.model_validate_json(answer.content, strict=True)
        assert parsed.model_dump(mode="json") == answer.json() and parsed.by == by
        assert set(answer.json()) == set(SimilarResponse.model_fields) and len(parsed.items) == 4
        assert all(set(i) == set(SimilarItem.model_fields) for i in answer.json()["items"])


async def test_item_detail_and_similar(client, trained):
    result, _ = trained
    item = result.data.item_ids[3]
    detail = (await client.get(f"/v1/items/{item}")).json()
    assert detail["item_id"] == item and detail["title"]
    for by in ("collaborative", "content"):
        body = (await client.get(f"/v1/items/{item}/similar", params={"k": 5, "by": by})).json()
        ids = [i["item_id"] for i in body["items"]]
        assert len(ids) == 5 and item not in ids
    missing = await client.get("/v1/items/NOPE")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "item_not_found",
        "message": "unknown item 'NOPE'",
        "details": {"item_id": "NOPE"},
    }
    assert (await client.get("/v1/items/NOPE/similar")).status_code == 404


async def test_content_similarity_prefers_the_same_category(client, trained):
    result, _ = trained
    item = result.catalog[0]
    body = (
        await client.get(f"/v1/items/{item['item_id']}/similar", params={"k": 10, "by": "content"})
    ).json()
    same = sum(i["category"] == item["category"] for i in body["items"])
    assert same >= 5  # 12 categories: chance would give ~1


async def test_validation_errors_have_one_shape(client):
    for body in ({"k": 0}, {"k": 5000}, {"items": "x"}, {"surprise": 1}, {"items": ["x" * 200]}):
        response = await client.post("/v1/recommendations", json=body)
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert error["code"] == "validation_error" and error["details"]
    garbage = await client.post(
        "/v1/recommendations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "invalid_json"


async def test_oversized_body_is_413(client):
    response = await client.post(
        "/v1/feedback/batch",
        content=b"x" * 2_000_000,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_request_id_and_metrics(client):
    response = await client.get("/healthz", headers={"x-request-id": "abc"})
    assert response.headers["x-request-id"] == "abc"
    assert (await client.get("/healthz")).headers["x-request-id"]
    await client.post("/v1/recommendations", json={"k": 2})
    text = (await client.get("/metrics")).text
    assert 'shoprec_request_seconds_bucket{le="0.001",method="POST",route="/v1/recommendations"' in text
    assert 'shoprec_recommendations_total{strategy="popular"} 1.0' in text
    assert "shoprec_model_info{version=" in text


async def test_openapi_has_examples(client):
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/recommendations" in spec["paths"]
    assert spec["components"]["schemas"]["RecommendationRequest"]["examples"]


def _schema(spec: dict, name: str) -> dict:
    return spec["components"]["schemas"][name]


async def test_openapi_states_enums_and_what_each_score_means(client):
    spec = (await client.get("/openapi.json")).json()
    assert _schema(spec, "Strategy")["enum"] == ["personalized", "popular"]
    assert _schema(spec, "SimilarBy")["enum"] == ["collaborative", "content"]
    assert _schema(spec, "ExcludeHistory")["enum"] == ["purchased", "seen", "none"]
    assert "impression" in _schema(spec, "Event")["enum"]
    assert _schema(spec, "RecommendationResponse")["properties"]["strategy"]["$ref"].endswith("/Strategy")
    assert _schema(spec, "SimilarResponse")["properties"]["by"]["$ref"].endswith("/SimilarBy")
    request = _schema(spec, "RecommendationRequest")["properties"]
    assert (
        request["exclude_history"]["default"] == "purchased"
        and request["items_event"]["default"] == "purchase"
    )
    score = _schema(spec, "RecommendedItem")["properties"]["score"]["description"]
    assert "personalized" in score and "z-scores" in score and "popular" in score
    assert "cosine" in _schema(spec, "SimilarItem")["properties"]["score"]["description"]
    # GET and POST share the exclusion policy and its default.
    params = {p["name"]: p for p in spec["paths"]["/v1/users/{user_id}/recommendations"]["get"]["parameters"]}
    assert params["exclude_history"]["schema"]["default"] == "purchased"
    assert {"exclude", "explain", "exclude_history"} <= set(params)
    docs = await client.get("/docs")
    assert docs.status_code == 200


async def test_an_item_with_a_single_logged_event_is_kept_and_recommendable(client, trained):
    """RARE-1 was bought once, by one shopper, and is in no catalog: minimum counts of 5 would
    have removed it; now it is in the model, ranks higher for its buyer's other items than for
    other shoppers' histories (the model learnt that one co-purchase), and shows up among the
    similar items of what it was bought with."""
    from tests.conftest import RARE_BUYER, RARE_ITEM

    result, _ = trained
    assert (await client.get(f"/v1/items/{RARE_ITEM}")).status_code == 200
    own = (await client.get(f"/v1/items/{RARE_ITEM}/similar", params={"k": 5})).json()
    assert len(own["items"]) == 5
    bought = [
        result.data.item_ids[i] for i in result.data.full[result.data.user_ids.index(RARE_BUYER)].indices
    ]
    others = [i for i in bought if i != RARE_ITEM]

    async def rank(items: list[str]) -> int:
        body = (await client.post("/v1/recommendations", json={"items": items, "k": 1000})).json()
        return [i["item_id"] for i in body["items"]].index(RARE_ITEM)

    data = result.data
    strangers = [u for u in range(0, len(data.user_ids), 40) if data.user_ids[u] != RARE_BUYER]
    elsewhere = [await rank([data.item_ids[i] for i in data.full[u].indices]) for u in strangers]
    assert await rank(others) < min(elsewhere)
    found = []
    for item in others:
        body = (await client.get(f"/v1/items/{item}/similar", params={"k": 100})).json()
        found += [item for i in body["items"] if i["item_id"] == RARE_ITEM]
    assert found
