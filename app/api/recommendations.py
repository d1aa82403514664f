"""Recommendations for sessions, known users and anonymous visitors."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Path, Query, Response

from app.api import limits
from app.auth import READER
from app.deps import RecommenderDep, State, StateDep
from app.errors import BODY_ERRORS, InvalidRequest, StoreUnavailable, responses
from app.schemas import ID_PATTERN, Id, RecommendationRequest, RecommendationResponse, RecommendedItem
from app.scoring.recommender import Filters, Recommendation, Recommender

router = APIRouter(prefix="/v1", tags=["recommendations"], dependencies=[READER])
ERRORS = responses(401, 403, 503, *BODY_ERRORS)


@router.post("/recommendations", response_model=RecommendationResponse, responses=ERRORS)
async def recommend(body: RecommendationRequest, state: StateDep, recommender: RecommenderDep) -> Response:
    """Top-k for a user and/or a session's items; popular items when there is no history."""
    ids = [("user_id", body.user_id)] if body.user_id else []
    ids += [("items", i) for i in (*body.items, *body.exclude)]
    limits.check(state.settings, k=body.k, history=len(body.items), ids=ids)
    weighted: list[tuple[str, float]] = []
    live, vector = True, None
    if body.user_id is not None:
        weighted, live, vector = await _user_history(state, recommender, body.user_id)
    session_weight = recommender.event_weights.get("purchase", 1.0)
    weighted += [(item, session_weight) for item in body.items]
    history, unknown = recommender.resolve(weighted)
    exclude, _ = recommender.resolve((item, 1.0) for item in body.exclude)
    f = body.filters
    filters = Filters.of(f.category, f.brand, f.min_price, f.max_price) if f is not None else None
    # Scoring is ~1 ms of numpy: run inline (a thread hop costs more than it frees).
    result = recommender.recommend(
        history,
        k=body.k,
        exclude_seen=body.exclude_seen,
        exclude=exclude.keys(),
        filters=filters,
        explain=body.explain,
        user_vector=vector if not body.items else None,
    )
    return _response(state, recommender, result, unknown, live)


@router.get(
    "/users/{user_id}/recommendations",
    response_model=RecommendationResponse,
    responses=responses(401, 403, 422, 503),
)
async def user_recommendations(
    state: StateDep,
    recommender: RecommenderDep,
    user_id: Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)],
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    exclude_seen: bool = True,
    category: Annotated[list[Id] | None, Query(max_length=100)] = None,
    brand: Annotated[list[Id] | None, Query(max_length=100)] = None,
    min_price: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    max_price: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
) -> Response:
    """A known user's training history plus every feedback event since, read at request time."""
    limits.check(state.settings, k=k, ids=[("user_id", user_id)])
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InvalidRequest("min_price must not exceed max_price")
    weighted, live, vector = await _user_history(state, recommender, user_id)
    history, _ = recommender.resolve(weighted)
    filters = Filters.of(category, brand, min_price, max_price)
    result = recommender.recommend(
        history,
        k=k,
        exclude_seen=exclude_seen,
        filters=filters,
        user_vector=vector,
    )
    return _response(state, recommender, result, [], live)


async def _user_history(
    state: State, recommender: Recommender, user_id: str
) -> tuple[list[tuple[str, float]], bool, np.ndarray | None]:
    """(weighted item ids, live feedback read?, precomputed user vector when still valid)."""
    idx, weights = recommender.training_history(user_id)
    weighted = [(recommender.items[i]["item_id"], float(w)) for i, w in zip(idx, weights, strict=True)]
    try:
        recent = await state.store.recent(user_id)
    except StoreUnavailable:
        recent, live = [], False
    else:
        live = True
    weighted += [(e.item_id, recommender.event_weight(e.event, e.value)) for e in recent]
    vector = recommender.stored_user_vector(user_id) if not recent else None
    return weighted, live, vector


def _response(
    state: State, recommender: Recommender, result: Recommendation, unknown: list[str], live: bool
) -> Response:
    state.metrics.recommendations.labels(result.strategy).inc()
    items = []
    for rank, (idx, score) in enumerate(zip(result.item_idx, result.scores, strict=True)):
        view = recommender.item_view(int(idx))
        because = result.because[rank] if result.because is not None else None
        items.append(RecommendedItem(**view, score=float(score), because=because))
    body = RecommendationResponse(
        items=items,
        model_version=recommender.version,
        strategy=result.strategy,
        unknown_items=unknown,
        live_feedback=live,
    )
    # Serialised once here; returning the model would make FastAPI validate it again.
    return Response(body.model_dump_json(), media_type="application/json")
