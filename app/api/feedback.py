"""Feedback events into Redis: the record for retraining and the live history."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Response

from app.api import limits
from app.auth import WRITER
from app.deps import State, StateDep
from app.errors import BODY_ERRORS, StoreUnavailable, responses
from app.schemas import ID_MAX_LENGTH, BatchAccepted, FeedbackAccepted, FeedbackBatch, FeedbackEvent

router = APIRouter(prefix="/v1/feedback", tags=["feedback"], dependencies=[WRITER])
ID_FIELDS = ("user_id", "item_id", "event_id", "recommendation_id")
ERRORS = responses(401, 403, 503, *BODY_ERRORS)


@router.post("", status_code=202, response_model=FeedbackAccepted, responses=ERRORS)
async def post_feedback(event: FeedbackEvent, state: StateDep) -> FeedbackAccepted:
    """Record one event; a retried event_id is acknowledged but stored once."""
    ((event_id, stored),) = await _store(state, [event])
    return FeedbackAccepted(accepted=1, duplicates=0 if stored else 1, event_id=event_id)


@router.post("/batch", status_code=202, response_model=BatchAccepted, responses=ERRORS)
async def post_feedback_batch(batch: FeedbackBatch, state: StateDep) -> Response:
    """Record up to 1,000 events in one round trip; one invalid event rejects the batch."""
    limits.check(state.settings, batch=len(batch.events))
    results = await _store(state, batch.events)
    stored = sum(1 for _, s in results if s)
    body = BatchAccepted(
        accepted=len(results), duplicates=len(results) - stored, event_ids=[e for e, _ in results]
    )
    # Serialised once here; returning the model would make FastAPI validate it again.
    return Response(body.model_dump_json(), status_code=202, media_type="application/json")


async def _store(state: State, events: list[FeedbackEvent]) -> list[tuple[str, bool]]:
    if state.settings.max_id_length < ID_MAX_LENGTH:  # else the schema has checked them
        limits.check(state.settings, ids=[(f, getattr(e, f) or "") for e in events for f in ID_FIELDS])
    recommender = state.recommender
    version = recommender.version if recommender is not None else "none"
    attribution = state.experiments.attribution() if state.settings.attribution else None
    if attribution is not None and any(e.recommendation_id for e in events):
        # The lists this process answered are in Redis first (a Redis that does not answer
        # delays the events by one timeout, then their own write says so).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.attribution.flush(), state.settings.redis_timeout_s)
    try:
        results = await state.store.append(events, model_version=version, attribution=attribution)
    except StoreUnavailable:
        state.metrics.feedback.labels("unavailable").inc(len(events))
        raise
    stored = sum(1 for _, s in results if s)
    state.metrics.feedback.labels("accepted").inc(stored)
    state.metrics.feedback.labels("duplicate").inc(len(results) - stored)
    return results
