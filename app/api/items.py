"""Catalog entries and item-to-item similarity."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.auth import READER
from app.deps import RecommenderDep, StateDep
from app.errors import ERROR_SCHEMA, ItemNotFound
from app.schemas import Item, RecommendedItem, SimilarResponse
from app.scoring.recommender import Recommender

router = APIRouter(prefix="/v1/items", tags=["items"], dependencies=[READER])
ItemId = Annotated[str, Path(min_length=1, max_length=128, examples=["P00001"])]


class SimilarBy(StrEnum):
    collaborative = "collaborative"
    content = "content"


def _index(recommender: Recommender, item_id: str) -> int:
    idx = recommender.item_index.get(item_id)
    if idx is None or not recommender.available[idx]:
        raise ItemNotFound(f"unknown item {item_id!r}", {"item_id": item_id})
    return idx


@router.get("/{item_id}", response_model=Item, responses={404: ERROR_SCHEMA})
async def get_item(item_id: ItemId, recommender: RecommenderDep) -> Item:
    """Catalog entry of one item."""
    idx = _index(recommender, item_id)
    item = recommender.items[idx]
    return Item(
        **recommender.item_view(idx),
        attributes=item.get("attributes") or [],
        popularity=float(recommender.popularity[idx]),
    )


@router.get(
    "/{item_id}/similar",
    response_model=SimilarResponse,
    responses={404: ERROR_SCHEMA, 422: ERROR_SCHEMA},
)
async def similar_items(
    item_id: ItemId,
    state: StateDep,
    recommender: RecommenderDep,
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    by: SimilarBy = SimilarBy.collaborative,
) -> SimilarResponse:
    """Items most like this one; `content` works for items nobody has interacted with."""
    idx = _index(recommender, item_id)
    ranked, scores = recommender.similar(idx, k=min(k, state.settings.max_k), by=by.value)
    items = [
        RecommendedItem(**recommender.item_view(int(i)), score=float(s))
        for i, s in zip(ranked, scores, strict=True)
    ]
    return SimilarResponse(item_id=item_id, by=by.value, items=items, model_version=recommender.version)
