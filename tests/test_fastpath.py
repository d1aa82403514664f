"""POST /v1/recommendations past the framework (app.fastpath): it answers a valid request
without FastAPI's routing and body handling, hands every other request to FastAPI with the
body it read, and answers exactly as FastAPI does."""

from __future__ import annotations

import json

import httpx
import pytest

from app import fastpath
from app.api import recommendations
from tests.conftest import app_client

KEYS = {"r-key": "reader"}
READER = {"x-api-key": "r-key"}
JSON = {"content-type": "application/json"}
LIMITS = {"api_keys": KEYS, "read_requires_key": True, "max_k": 50}  # k over 50: the endpoint's 422


@pytest.fixture
async def framework(settings_factory, redis_client):
    """An app without the fast route (every request through FastAPI), keys required for reads."""
    async with app_client(settings_factory(fast_route=False, **LIMITS)) as http:
        yield http


async def test_a_valid_request_is_answered_without_the_framework(framework, trained):
    app, reached = framework.app, []

    async def inner(scope, receive, send):  # FastAPI, recording what reaches it
        reached.append(scope["path"])
        await app(scope, receive, send)

    route = fastpath.route_of(recommendations.router)
    fast = fastpath.FastRoute(inner, route=route, handlers=app.exception_handlers)

    async def asgi(scope, receive, send):
        await fast({**scope, "app": app}, receive, send)  # as Starlette hands it on

    item = trained[0].data.item_ids[0]
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://shoprec") as http:
        answered = await http.post("/v1/recommendations", json={"items": [item], "k": 3}, headers=READER)
        assert answered.status_code == 200 and len(answered.json()["items"]) == 3
        assert (await http.post("/v1/recommendations", json={"k": 3})).status_code == 401
        over = await http.post("/v1/recommendations", json={"k": 60}, headers=READER)
        assert over.status_code == 422 and over.json()["error"]["message"] == "k must be at most 50"
        assert reached == []  # valid bodies, and the endpoint's own errors, never reach FastAPI
        # A body FastAPI must judge goes on to it, body and all.
        wrong = await http.post("/v1/recommendations", json={"k": 0}, headers=READER)
        assert wrong.status_code == 422 and wrong.json()["error"]["details"][0]["loc"] == ["body", "k"]
        garbage = await http.post("/v1/recommendations", content=b"{no", headers={**READER, **JSON})
        assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "invalid_json"
        assert reached == ["/v1/recommendations", "/v1/recommendations"]
        other = await http.get("/v1/model", headers=READER)
        assert other.status_code == 200 and reached[-1] == "/v1/model"


REQUESTS = [
    ({"k": 4}, READER),
    ({"items": ["ITEM"], "k": 5, "explain": True, "exclude_history": "none"}, READER),
    ({"items": ["ITEM", "nope"], "filters": {"min_price": 0, "max_price": 1e9}, "diversity": 0.3}, READER),
    ({"k": 4}, {}),  # no key: 401
    ({"k": 4}, {"x-api-key": "wrong"}),  # 401
    ({"k": 0}, READER),  # FastAPI's 422
    ({"k": 4, "surprise": 1}, READER),
    ({"items": ["x"] * 1001}, READER),
    ({"k": 60}, READER),  # over max_k: the endpoint's 422
    ({"k": 4, "boost": {"colour": {"red": 2}}}, READER),
    (b"{not json", READER),
    (b"", READER),
    (b"[1, 2]", READER),
]


@pytest.mark.parametrize("path", ["/v1/recommendations", "/v1/recommendations/"])
async def test_answers_are_the_frameworks(settings_factory, redis_client, trained, framework, path):
    item = str(trained[0].data.item_ids[0])
    settings = settings_factory(fast_route=True, **LIMITS)
    async with app_client(settings) as fast:
        for body, headers in REQUESTS:
            content = json.dumps(body).replace("ITEM", item).encode() if isinstance(body, dict) else body
            answers = [
                await http.post(path, content=content, headers={**JSON, **headers})
                for http in (fast, framework)
            ]
            got, expected = [(a.status_code, _comparable(a)) for a in answers]
            assert got == expected, (body, headers)
            assert answers[0].headers.get("content-type") == answers[1].headers.get("content-type")
            assert answers[0].headers.get("www-authenticate") == answers[1].headers.get("www-authenticate")
            assert answers[0].headers["x-request-id"]
        metrics = (await fast.get("/metrics")).text
        counted = 'shoprec_request_seconds_count{method="POST",route="/v1/recommendations",status="200"}'
        assert path != "/v1/recommendations" or counted in metrics


def _comparable(response: httpx.Response) -> object:
    """The answer without what differs between any two answers (the list's id)."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    if isinstance(body, dict):
        body.pop("recommendation_id", None)
    return body
