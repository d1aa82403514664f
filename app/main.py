"""The application factory. Nothing is created at import time: ``create_app(settings)``
builds the app, and its lifespan opens the Redis pool and loads the artifact."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import auth, errors, fastpath, registry, web
from app.api import admin, experiments, feedback, items, recommendations, system
from app.config import Settings
from app.deps import State
from app.experiments.book import ExperimentBook, seed_experiments
from app.observability import Metrics, RequestMiddleware, release_heap, settle_heap
from app.ratelimit import RateLimitMiddleware, TokenBuckets
from app.store.attribution import AttributionStore
from app.store.catalog import CatalogStore
from app.store.connect import connect, connect_for_pubsub
from app.store.experiments import ExperimentStore
from app.store.exposure import ExposureStore
from app.store.feedback import FeedbackStore
from app.store.keys import Keys


def configure_logging() -> None:
    """JSON lines on stderr for the shoprec loggers, once per process."""
    logger = logging.getLogger("shoprec")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect(
            settings.redis_url, cluster=settings.redis_cluster, timeout_s=settings.redis_timeout_s
        )
        keys = Keys(settings.redis_prefix, settings.redis_shards)
        store = FeedbackStore(
            client,
            keys,
            recent_cap=settings.recent_events,
            recent_ttl_s=settings.recent_ttl_s,
            idempotency_ttl_s=settings.idempotency_ttl_s,
        )
        attribution = AttributionStore(
            client,
            keys,
            record_ttl_s=settings.recommendation_ttl_s,
            experiment_ttl_s=settings.experiment_ttl_s,
            implicit=settings.implicit_impressions,
            on_error=metrics.store_error,
        )
        book = ExperimentBook(ExperimentStore(client, keys), counters_ttl_s=settings.experiment_ttl_s)
        state = State(
            settings=settings, store=store, metrics=metrics, attribution=attribution, experiments=book
        )
        state.catalog = CatalogStore(client, keys)
        state.exposure = ExposureStore(
            client, keys, cap=settings.explore_exposure_cap, refresh_s=settings.explore_refresh_s
        )
        state.publisher = client
        await registry.reload(state, reason="startup")
        await seed_experiments(book, settings.experiments_file)
        app.state.shoprec = state
        listener_client = connect_for_pubsub(settings.redis_url, connect_timeout_s=settings.redis_timeout_s)
        stop = asyncio.Event()
        listener = asyncio.create_task(registry.listen(state, listener_client, stop))
        refresher = asyncio.create_task(book.keep_fresh(settings.experiments_refresh_s, stop))
        settle_heap()
        metrics.watch_gc()
        try:
            yield
        finally:
            metrics.unwatch_gc()
            stop.set()
            # The listener polls with a timeout, so it sees ``stop`` within a second;
            # cancelling a blocked pub/sub read can hang in redis-py.
            await asyncio.wait([listener, refresher], timeout=5)
            listener.cancel()
            refresher.cancel()
            await attribution.close(timeout_s=5)  # the records of the last answers
            await listener_client.aclose()
            await client.aclose()
            release_heap()  # after the listener, which may still have loaded a model

    app = FastAPI(
        title="shoprec",
        version="0.1.0",
        summary="Recommendations for online shops: sessions, users, similar items, feedback.",
        lifespan=lifespan,
        docs_url=None,  # app.web serves /docs and /redoc with its own copies of their files
        redoc_url=None,
    )
    errors.install(app, retry_after_s=settings.retry_after_s, on_store_error=metrics.store_error)
    for module in (recommendations, items, feedback, system, admin, experiments):
        app.include_router(module.router)
    web.install(app, settings)
    auth.document_security(app, settings)
    if settings.fast_route:  # the innermost middleware: added first
        fastpath.install(app, recommendations.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],  # every method the API has
            allow_headers=["*"],
        )
    if settings.rate_limit_per_s:
        buckets = TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst)
        app.add_middleware(RateLimitMiddleware, buckets=buckets)
    app.add_middleware(  # outermost: it sees (and logs) every answer, 429 and 413 included
        RequestMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        log_requests=settings.log_requests,
    )
    return app
