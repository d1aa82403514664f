"""Model information, health, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.auth import ReaderRoute
from app.deps import RecommenderDep, StateDep
from app.errors import StoreUnavailable, error_body, responses
from app.schemas import ModelInfo, Readiness

router = APIRouter(tags=["system"])


async def model_info(recommender: RecommenderDep, state: StateDep) -> ModelInfo:
    """Serving model: version, training time, data fingerprint, counts, offline metrics."""
    m = recommender.artifact.manifest
    return ModelInfo(
        model_version=recommender.version,
        created_at=m.created_at,
        data_fingerprint=m.data_fingerprint,
        counts=m.counts.model_dump(),
        metrics=m.metrics,
        blend_weights=m.blend_weights,
        last_refused=state.reload_error,
    )


router.add_api_route(  # the one reading route here: health, readiness and metrics take no key
    "/v1/model",
    model_info,
    methods=["GET"],
    response_model=ModelInfo,
    responses=responses(401, 403, 503),
    route_class_override=ReaderRoute,
)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses=responses(503))
async def readyz(state: StateDep) -> JSONResponse:
    """Ready = can serve recommendations: a model is loaded. Redis is reported, not required:
    without it recommendations still answer (from the artifact) and feedback answers 503."""
    redis = "up"
    try:
        await state.store.ping()
    except StoreUnavailable as exc:
        state.metrics.store_error(exc, "GET /readyz")
        redis = "down"
    if state.recommender is None:
        return JSONResponse(
            error_body("not_ready", f"model not loaded: {state.load_error}", {"redis": redis}),
            503,
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )
    ready = Readiness(model_version=state.recommender.version, redis=redis, degraded=redis != "up")
    return JSONResponse(ready.model_dump())


@router.get("/metrics", include_in_schema=False)
async def metrics(state: StateDep) -> Response:
    try:  # Redis state as of this scrape, for dashboards and alerts
        await state.store.ping()
        state.metrics.redis_up.set(1)
    except StoreUnavailable:
        state.metrics.redis_up.set(0)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
