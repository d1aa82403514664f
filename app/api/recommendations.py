"""Recommendations for sessions, known users and anonymous visitors."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import Field
from pydantic_core import to_json

from app.api import limits
from app.auth import ReaderRoute
from app.deps import State, serving
from app.errors import BODY_ERRORS, InvalidRequest, StoreUnavailable, responses
from app.experiments.definition import Assignment, Variant
from app.schemas import (
    BOOST,
    DIVERSITY,
    EXCLUDE,
    EXCLUDE_HISTORY,
    EXPLAIN,
    EXPLORATION,
    ID_PATTERN,
    Id,
    RecommendationRequest,
    RecommendationResponse,
)
from app.scoring import history
from app.scoring.history import ExcludeHistory, History
from app.scoring.recommender import Explore, Filters, Recommendation, Recommender, Rerank, Strategy
from app.store.attribution import Served
from app.store.feedback import RecentEvent

router = APIRouter(prefix="/v1", tags=["recommendations"], route_class=ReaderRoute)
ERRORS = responses(401, 403, 503, *BODY_ERRORS)
# GET's boost rules: ATTRIBUTE:VALUE:FACTOR.
BOOST_PATTERN = r"^(category|brand):[^\x00-\x1f\x7f]+:[0-9]+(\.[0-9]+)?$"
BoostRule = Annotated[str, Field(max_length=300, pattern=BOOST_PATTERN)]


@router.post("/recommendations", response_model=RecommendationResponse, responses=ERRORS)
async def recommend(body: RecommendationRequest, request: Request) -> Response:
    """Top-k for a user and/or a session's items; popular items when there is no history."""
    state, recommender = serving(request)
    ids = [("user_id", body.user_id)] if body.user_id else []
    ids += [("items", i) for i in (*body.items, *body.exclude)]
    limits.check(state.settings, k=body.k, history=len(body.items), ids=ids)
    live, live_read = await _live_events(state, body.user_id)
    built = history.build(
        recommender, user_id=body.user_id, live=live, session=body.items, session_event=body.items_event
    )
    f = body.filters
    filters = Filters.of(f.category, f.brand, f.min_price, f.max_price) if f is not None else None
    unit = body.user_id or body.session_id
    assignment = state.experiments.assignment(unit)
    variant = _variant(assignment)
    scored, user_vector = _history(built, variant)
    diversity = body.diversity if variant.diversity is None else variant.diversity
    exploration = body.exploration if variant.exploration is None else variant.exploration
    # Scoring is a few ms of numpy: run inline (a thread hop costs more than it frees).
    result = recommender.recommend(
        scored,
        k=body.k,
        exclude=_excluded(recommender, built, body.exclude_history, body.exclude),
        filters=filters,
        explain=body.explain,
        user_vector=user_vector,
        weights=variant.weights,
        rerank=Rerank(diversity, {str(a): t for a, t in body.boost.items()}),
        explore=await _explore(state, recommender, exploration),
    )
    await _count_exposure(state, recommender, result)
    return await _response(state, recommender, result, unit, assignment, built.unknown, live_read)


@router.get(
    "/users/{user_id}/recommendations",
    response_model=RecommendationResponse,
    responses=responses(401, 403, 422, 503),
)
async def user_recommendations(
    request: Request,
    user_id: Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)],
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    exclude_history: Annotated[ExcludeHistory, Query(description=EXCLUDE_HISTORY)] = ExcludeHistory.purchased,
    exclude: Annotated[list[Id] | None, Query(max_length=1000, description=EXCLUDE)] = None,
    explain: Annotated[bool, Query(description=EXPLAIN)] = False,
    category: Annotated[list[Id] | None, Query(max_length=100)] = None,
    brand: Annotated[list[Id] | None, Query(max_length=100)] = None,
    min_price: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    max_price: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    diversity: Annotated[float, Query(ge=0, le=1, allow_inf_nan=False, description=DIVERSITY)] = 0.0,
    boost: Annotated[
        list[BoostRule] | None,
        Query(
            max_length=100,
            description=f"ATTRIBUTE:VALUE:FACTOR, repeated (e.g. brand:acme:1.2): {BOOST}",
        ),
    ] = None,
    exploration: Annotated[
        float | None, Query(ge=0, le=1, allow_inf_nan=False, description=EXPLORATION)
    ] = None,
) -> Response:
    """A known user's training history plus every feedback event since, read at request time."""
    state, recommender = serving(request)
    excluded_ids = exclude or []
    limits.check(state.settings, k=k, ids=[("user_id", user_id), *(("exclude", i) for i in excluded_ids)])
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InvalidRequest("min_price must not exceed max_price")
    live, live_read = await _live_events(state, user_id)
    built = history.build(recommender, user_id=user_id, live=live)
    assignment = state.experiments.assignment(user_id)
    variant = _variant(assignment)
    scored, user_vector = _history(built, variant)
    result = recommender.recommend(
        scored,
        k=k,
        exclude=_excluded(recommender, built, exclude_history, excluded_ids),
        filters=Filters.of(category, brand, min_price, max_price),
        explain=explain,
        user_vector=user_vector,
        weights=variant.weights,
        rerank=Rerank(diversity if variant.diversity is None else variant.diversity, _boosts(boost or [])),
        explore=await _explore(
            state, recommender, exploration if variant.exploration is None else variant.exploration
        ),
    )
    await _count_exposure(state, recommender, result)
    return await _response(state, recommender, result, user_id, assignment, [], live_read)


DEFAULTS = Variant(share=1)


def _variant(assignment: Assignment | None) -> Variant:
    """What the shopper's variant changes: its blend weights, strategy, diversity and
    exploration take precedence over the request's (the experiment decides); what it leaves
    out, and everything for the holdout and outside an experiment, stays the request's."""
    if assignment is None or assignment.variant is None:
        return DEFAULTS
    return assignment.variant


def _history(built: History, variant: Variant) -> tuple[dict[int, float], np.ndarray | None]:
    """(history weights, stored user vector) to score: none for a variant serving popularity."""
    if variant.strategy == Strategy.popular:
        return {}, None
    return built.weights, built.user_vector


def _boosts(rules: list[str]) -> dict[str, dict[str, float]]:
    """``ATTRIBUTE:VALUE:FACTOR`` query values (the pattern has checked their shape)."""
    out: dict[str, dict[str, float]] = {}
    for rule in rules:
        attribute_value, factor = rule.rsplit(":", 1)
        attribute, value = attribute_value.split(":", 1)
        if not 0 <= float(factor) <= 100:
            raise InvalidRequest(f"boost {rule!r}: the factor must be between 0 and 100")
        out.setdefault(attribute, {})[value] = float(factor)
    return out


async def _live_events(state: State, user_id: str | None) -> tuple[list[RecentEvent], bool]:
    """(the user's live events, whether Redis could be read); a Redis outage degrades to none."""
    if user_id is None:
        return [], True
    try:
        return await state.store.recent(user_id), True
    except StoreUnavailable as exc:
        state.metrics.store_error(exc, "live events of a recommendation")
        return [], False


async def _explore(state: State, recommender: Recommender, share: float | None) -> Explore | None:
    """The request's exploration slots (its share, else the server's), without the items
    already shown the exposure cap's number of times (the last known set if Redis fails)."""
    settings = state.settings
    share = settings.exploration if share is None else share
    if share <= 0:
        return None
    try:
        saturated = await state.exposure.saturated()
    except StoreUnavailable as exc:
        state.metrics.store_error(exc, "exposure of a recommendation")
        saturated = state.exposure.last_saturated
    return Explore(share, settings.explore_max_popularity, recommender.indices_of(saturated))


async def _count_exposure(state: State, recommender: Recommender, result: Recommendation) -> None:
    """One exposure more for each item served in an exploration slot (best effort)."""
    if result.explored is None or not result.explored.any():
        return
    shown = [recommender.item_id(int(i)) for i in result.item_idx[result.explored]]
    try:
        await state.exposure.shown(shown)
    except StoreUnavailable as exc:
        state.metrics.store_error(exc, "exposure count of a recommendation")


def _excluded(
    recommender: Recommender, built: History, policy: ExcludeHistory, item_ids: Iterable[str]
) -> set[int]:
    """The history items the policy hides, and the request's own exclusions."""
    hidden = built.excluded(policy)
    named = list(item_ids)
    if not named:
        return hidden
    return hidden | {i for i in recommender.known_ids(named).tolist() if i >= 0}


async def _response(
    state: State,
    recommender: Recommender,
    result: Recommendation,
    unit: str | None,
    assignment: Assignment | None,
    unknown: list[str],
    live: bool,
) -> Response:
    state.metrics.recommendations.labels(result.strategy.value).inc()
    explored = result.explored.tolist() if result.explored is not None else [False] * len(result.item_idx)
    because: list[list[str] | None] = [None] * len(result.item_idx)
    if result.because is not None:
        because = list(result.because)
    items = [
        {**recommender.item_view(idx), "score": score, "because": why, "explored": shown}
        for idx, score, why, shown in zip(
            result.item_idx.tolist(), result.scores.tolist(), because, explored, strict=True
        )
    ]
    body = {
        "items": items,
        "model_version": recommender.version,
        "strategy": result.strategy.value,
        "unknown_items": unknown,
        "live_feedback": live,
        "recommendation_id": os.urandom(16).hex(),
        "experiment_id": assignment.experiment_id if assignment else None,
        "variant": assignment.group if assignment else None,
    }
    if unit is not None and state.settings.attribution:
        _record(state, body, unit)
    # The answer is built from the model's own values, in RecommendationResponse's shape
    # (tests validate it against the model): serialised as it is, not validated again.
    return Response(to_json(body), media_type="application/json")


def _record(state: State, body: dict[str, Any], unit: str) -> None:
    """Queue the list's attribution record (and implicit impressions), written just after
    the answer (app.store.attribution); a Redis outage loses them, not the answer."""
    served = Served(
        recommendation_id=body["recommendation_id"],
        unit=unit,
        experiment_id=body["experiment_id"] or "",
        group=body["variant"] or "",
        model_version=body["model_version"],
        strategy=body["strategy"],
        item_ids=[i["item_id"] for i in body["items"]],
    )
    state.attribution.record(served)
