"""Model information, health, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.auth import READER
from app.deps import RecommenderDep, StateDep
from app.errors import StoreUnavailable, error_body, responses
from app.schemas import ModelInfo

router = APIRouter(tags=["system"])


@router.get("/v1/model", response_model=ModelInfo, responses=responses(401, 403, 503), dependencies=[READER])
async def model_info(recommender: RecommenderDep, state: StateDep) -> ModelInfo:
    """Serving model: version, training time, data fingerprint, counts, offline metrics."""
    m = recommender.artifact.manifest
    return ModelInfo(
        model_version=recommender.version,
        created_at=m.get("created_at"),
        data_fingerprint=m.get("data_fingerprint"),
        counts=m.get("counts", {}),
        metrics=m.get("metrics", {}),
        blend_weights=m.get("blend_weights", {}),
        last_refused=state.reload_error,
    )


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses=responses(503))
async def readyz(state: StateDep) -> JSONResponse:
    """Ready when a model is loaded and Redis answers; 503 with the reason otherwise."""
    problems = []
    if state.recommender is None:
        problems.append(f"model not loaded: {state.load_error}")
    try:
        await state.store.ping()
    except StoreUnavailable as exc:
        problems.append(exc.message)
    if problems:
        return JSONResponse(
            error_body("not_ready", "; ".join(problems)),
            503,
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )
    assert state.recommender is not None
    return JSONResponse({"status": "ready", "model_version": state.recommender.version})


@router.get("/metrics", include_in_schema=False)
async def metrics(state: StateDep) -> Response:
    try:  # Redis state as of this scrape, for dashboards and alerts
        await state.store.ping()
        state.metrics.redis_up.set(1)
    except StoreUnavailable:
        state.metrics.redis_up.set(0)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
