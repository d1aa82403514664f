"""Typed access to the app's collaborators for route handlers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from app.config import Settings
from app.errors import ModelNotLoaded
from app.experiments.book import ExperimentBook
from app.observability import Metrics
from app.scoring.recommender import Recommender
from app.store.attribution import AttributionStore
from app.store.feedback import FeedbackStore


@dataclass
class State:
    """What the lifespan creates. ``recommender`` is swapped whole on reload."""

    settings: Settings
    store: FeedbackStore
    metrics: Metrics
    attribution: AttributionStore
    experiments: ExperimentBook
    recommender: Recommender | None = None
    load_error: str | None = None
    reload_error: str | None = None  # the last refused version, for GET /v1/model
    publisher: Any = None  # redis client used to notify other processes of a new version
    catalog: Any = None  # app.store.catalog.CatalogStore
    exposure: Any = None  # app.store.exposure.ExposureStore
    base_artifact: Any = None  # the loaded artifact before catalog changes
    catalog_revision: int | None = None  # the catalog changes ``recommender`` holds (None: none)
    # Held while a serving model is built from Redis state and swapped in, so a rebuild
    # that read older catalog state cannot finish after, and undo, a newer one.
    swap_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def get_state(request: Request) -> State:
    return request.app.state.shoprec


def _loaded(state: State) -> Recommender:
    if state.recommender is None:
        raise ModelNotLoaded(f"no model loaded: {state.load_error}")
    return state.recommender


async def get_recommender_of(state: State) -> Recommender:
    return _loaded(state)


def serving(request: Request) -> tuple[State, Recommender]:
    """(state, serving model) for the routes every storefront page calls: read from the
    request rather than injected, as FastAPI's solving of two dependencies cost ~35 us of a
    ~1.2 ms recommendation (docs/benchmarks.md)."""
    state: State = request.app.state.shoprec
    return state, _loaded(state)


async def get_recommender(request: Request) -> Recommender:
    return await get_recommender_of(request.app.state.shoprec)


StateDep = Annotated[State, Depends(get_state)]
RecommenderDep = Annotated[Recommender, Depends(get_recommender)]
