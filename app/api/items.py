"""Catalog entries and item-to-item similarity."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic_core import to_json

from app import registry
from app.api import limits
from app.auth import WRITER, ReaderRoute
from app.deps import RecommenderDep, StateDep, get_recommender_of, serving
from app.errors import BODY_ERRORS, ItemNotFound, responses
from app.schemas import ID_PATTERN, Item, ItemUpdate, SimilarResponse
from app.scoring.recommender import Recommender, SimilarBy

router = APIRouter(prefix="/v1/items", tags=["items"], route_class=ReaderRoute)
ItemId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN, examples=["P00001"])]


def _index(recommender: Recommender, item_id: str) -> int:
    idx = recommender.index_of(item_id)
    if idx is None or recommender.catalog.is_deleted(idx):
        raise ItemNotFound(f"unknown item {item_id!r}", {"item_id": item_id})
    return idx


def _item(recommender: Recommender, idx: int) -> Item:
    record = recommender.catalog.record(idx)
    return Item(
        **recommender.item_view(idx),
        attributes=record.get("attributes") or [],
        popularity=recommender.popularity(idx),
        available=bool(recommender.catalog.available(np.array([idx]))[0]),
    )


@router.get("/{item_id}", response_model=Item, responses=responses(401, 403, 404, 503))
async def get_item(item_id: ItemId, recommender: RecommenderDep) -> Item:
    """Catalog entry of one item."""
    return _item(recommender, _index(recommender, item_id))


@router.put(
    "/{item_id}",
    response_model=Item,
    responses=responses(401, 403, 503, *BODY_ERRORS),
    dependencies=[WRITER],
)
async def put_item(item_id: ItemId, body: ItemUpdate, state: StateDep) -> Item:
    """Add or replace a catalog entry; recommendable at once in every API process."""
    limits.check(state.settings, ids=[("item_id", item_id)])
    revision = await state.catalog.put(item_id, body.model_dump())
    await registry.refresh_catalog(state, revision=revision)
    recommender = await get_recommender_of(state)
    return _item(recommender, _index(recommender, item_id))


@router.delete(
    "/{item_id}",
    status_code=204,
    responses=responses(401, 403, 404, 503),
    dependencies=[WRITER],
)
async def delete_item(item_id: ItemId, state: StateDep, recommender: RecommenderDep) -> Response:
    """Remove an item from recommendations and the catalog until it is PUT again."""
    _index(recommender, item_id)
    revision = await state.catalog.put(item_id, None)
    await registry.refresh_catalog(state, revision=revision)
    return Response(status_code=204)


@router.get(
    "/{item_id}/similar",
    response_model=SimilarResponse,
    responses=responses(401, 403, 404, 422, 503),
)
async def similar_items(
    request: Request,
    item_id: ItemId,
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    by: SimilarBy = SimilarBy.collaborative,
) -> Response:
    """Items most like this one; `content` works for items nobody has interacted with."""
    state, recommender = serving(request)
    limits.check(state.settings, k=k)
    idx = _index(recommender, item_id)
    ranked, scores = recommender.similar(idx, k=k, by=by)
    items = [
        {**recommender.item_view(i), "score": s}
        for i, s in zip(ranked.tolist(), scores.tolist(), strict=True)
    ]
    body = {"item_id": item_id, "by": by.value, "items": items, "model_version": recommender.version}
    # Built from the model's own values in SimilarResponse's shape (tests validate it against
    # the model): serialised as it is, not validated again.
    return Response(to_json(body), media_type="application/json")
