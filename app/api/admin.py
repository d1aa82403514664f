"""Model administration: versions on disk, reload, rollback (admin key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app import registry
from app.auth import ADMIN
from app.deps import StateDep
from app.errors import responses
from app.scoring import artifact

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[ADMIN])
ERRORS = responses(401, 403, 404)


@router.get("/models", responses=ERRORS)
async def list_models(state: StateDep) -> dict[str, Any]:
    """Versions on disk with their test metrics; which is current and which is serving."""
    folder = state.settings.artifacts_dir
    return {
        "current": registry.current_version(folder),
        "serving": state.recommender.version if state.recommender else None,
        "last_refused": state.reload_error,
        "versions": registry.versions(folder),
    }


@router.post("/reload", responses=ERRORS)
async def reload_model(state: StateDep) -> dict[str, Any]:
    """Load DIR/current here and tell every other API process to do the same."""
    ok = await registry.reload(state, reason="admin reload")
    serving = state.recommender.version if state.recommender else None
    if ok and serving:
        await registry.notify(state.publisher, state.settings.redis_prefix, serving)
    return {"reloaded": ok, "serving": serving, "error": None if ok else state.reload_error}


@router.post("/rollback", responses=ERRORS)
async def rollback(state: StateDep) -> dict[str, Any]:
    """Point current at the previous version, load it, and tell every process."""
    target = registry.rollback_target(state.settings.artifacts_dir)
    artifact.publish(state.settings.artifacts_dir, target)
    ok = await registry.reload(state, reason=f"rollback to {target}")
    if ok:
        await registry.notify(state.publisher, state.settings.redis_prefix, target)
    return {"rolled_back_to": target, "reloaded": ok, "error": None if ok else state.reload_error}
