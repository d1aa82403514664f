"""Hostile requests get a clear 4xx in the one error shape, never a 500: bodies that are not
JSON, too deep, too big or of the wrong type; odd ids and numbers; and clients over the
rate limit (429 with Retry-After)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import app_client

EVENT = {"user_id": "u", "item_id": "i", "event": "view"}
JSON = {"content-type": "application/json"}


def nested(depth: int) -> bytes:
    return b'{"items":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/recommendations", nested(100_000)),
        ("/v1/recommendations", b'{"items": ["\xff\xfe"]}'),  # invalid UTF-8
        ("/v1/feedback", b'{"user_id": "u", "item_id": '),  # truncated
        ("/v1/feedback", b'{"user_id": "u", "item_id": "i", "event": "view"} trailing'),
        ("/v1/recommendations", b'{"k": ' + b"9" * 5000 + b"}"),  # an int Python will not parse
    ],
    ids=["nested-100k", "invalid-utf8", "truncated", "trailing-garbage", "5000-digit-int"],
)
async def test_unparseable_bodies_are_400(client, path, body):
    response = await client.post(path, content=body, headers=JSON)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json" and "UTF-8 encoded JSON" in error["message"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
async def test_bodies_that_are_not_json_are_415(client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post("/v1/feedback", content=json.dumps(EVENT).encode(), headers=headers)
    assert response.status_code == 415
    assert "Content-Type: application/json" in response.json()["error"]["message"]
    # A JSON media type with parameters, or a +json type, is fine.
    for ok in ("application/json; charset=utf-8", "application/vnd.shop+json"):
        response = await client.post("/v1/feedback", content=json.dumps(EVENT), headers={"content-type": ok})
        assert response.status_code == 202, ok


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**EVENT, "user_id": "u" * 100_000}, "user_id"),
        ({**EVENT, "item_id": "a\x00b"}, "item_id"),  # control characters
        ({**EVENT, "event": "rating", "value": 1e309}, "value"),  # Infinity after parsing
        ({**EVENT, "timestamp": "1970-01-01T00:00:00Z"}, "timestamp"),
        ({**EVENT, "timestamp": 1e300}, "timestamp"),
        ({**EVENT, "timestamp": "5013-05-29T18:43:30+06:00"}, "timestamp"),
        ({**EVENT, "value": False}, "value"),  # a bool is not a number
        ({**EVENT, "surprise": 1}, "surprise"),
    ],
)
async def test_odd_fields_are_422_naming_the_field(client, body, field):
    response = await client.post("/v1/feedback", content=json.dumps(body), headers=JSON)
    assert response.status_code == 422
    assert field in response.json()["error"]["message"]


async def test_nan_and_infinity_literals_are_rejected(client):
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"user_id": "u", "item_id": "i", "event": "rating", "value": ' + literal + b"}"
        response = await client.post("/v1/feedback", content=body, headers=JSON)
        assert response.status_code == 422 and "value" in response.json()["error"]["message"]


async def test_types_are_not_coerced(client):
    for body in ({"k": "10"}, {"k": 10.5}, {"explain": 0}, {"explain": "true"}, {"exclude_history": 1}):
        assert (await client.post("/v1/recommendations", json=body)).status_code == 422, body


async def test_integral_numbers_are_counts_as_json_schema_says(client):
    """JSON Schema's integer includes 10.0 (schemathesis sends such bodies): accepted as 10."""
    answer = await client.post("/v1/recommendations", json={"k": 3.0})
    assert answer.status_code == 200 and len(answer.json()["items"]) == 3
    event = {"user_id": "u", "item_id": "P00001", "event": "click", "recommendation_id": "r"}
    event["position"] = 60.0
    assert (await client.post("/v1/feedback/batch", json={"events": [event]})).status_code == 202
    for k in (True, 3.5, "3"):
        assert (await client.post("/v1/recommendations", json={"k": k})).status_code == 422, k


async def test_405_lists_every_method_of_the_path(client):
    response = await client.post("/v1/items/P00001")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PUT"
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_rate_limit_is_off_by_default(client):
    for _ in range(50):
        assert (await client.get("/v1/items/P00001")).status_code != 429


async def test_rate_limit_answers_429_with_retry_after(settings_factory, redis_client):
    settings = settings_factory(
        rate_limit_per_s=0.5, rate_limit_burst=3, api_keys={"k1": "writer", "k2": "writer"}
    )
    async with app_client(settings) as http:
        answers = [(await http.post("/v1/recommendations", json={"k": 1})).status_code for _ in range(5)]
        assert answers == [200, 200, 200, 429, 429]
        limited = await http.post("/v1/feedback", json=EVENT, headers={"x-api-key": "k1"})
        # Another client (this key) has its own bucket; health checks are never limited.
        assert limited.status_code == 202
        assert (await http.get("/healthz")).status_code == 200
        response = await http.post("/v1/recommendations", json={"k": 1})
        assert response.status_code == 429
        assert 1 <= int(response.headers["retry-after"]) <= 2
        error = response.json()["error"]
        assert error["code"] == "rate_limited" and "0.5 requests/s" in error["message"]
        assert "k1" not in response.text


def test_token_bucket_refills_at_the_rate():
    from app.ratelimit import TokenBuckets

    now = [0.0]
    buckets = TokenBuckets(2.0, 2, max_clients=2, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0.5]
    now[0] += 0.5  # one token back
    assert buckets.take("a") == 0 and buckets.take("a") == pytest.approx(0.5)
    buckets.take("b"), buckets.take("c")  # the table is capped: "a", the oldest, is dropped
    assert len(buckets) == 2 and buckets.take("a") == 0


async def test_ten_megabyte_bodies_are_413_with_or_without_content_length(client):
    declared = await client.post("/v1/feedback/batch", content=b"[" * 10_000_000, headers=JSON)
    assert declared.status_code == 413

    async def chunks():  # no Content-Length: the limit applies while the body streams in
        for _ in range(10):
            yield b" " * 1_000_000

    streamed = await client.post("/v1/feedback/batch", content=chunks(), headers=JSON)
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
