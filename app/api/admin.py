"""Model administration: versions on disk, reload, rollback (admin key).

A reload or rollback that did not happen is not a 200: 404 nothing to load or roll back to,
409 the version was refused (validation failed; disk and the serving model unchanged), 503
the artifacts directory could not be read.
"""

from __future__ import annotations

from fastapi import APIRouter

from app import registry
from app.auth import ADMIN
from app.deps import StateDep
from app.errors import NotFound, responses
from app.schemas import ModelVersions, Reloaded, RolledBack, VersionInfo
from app.scoring import artifact

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[ADMIN])
CHANGES = responses(401, 403, 404, 409, 503)


@router.get("/models", response_model=ModelVersions, responses=responses(401, 403))
async def list_models(state: StateDep) -> ModelVersions:
    """Versions on disk with their test metrics; which is current, serving, ever published."""
    folder = state.settings.artifacts_dir
    return ModelVersions(
        current=registry.current_version(folder),
        serving=registry.serving_version(state),
        last_refused=state.reload_error,
        versions=[VersionInfo(**v) for v in registry.versions(folder)],
    )


@router.post("/reload", response_model=Reloaded, responses=CHANGES)
async def reload_model(state: StateDep) -> Reloaded:
    """Load DIR/current here, then tell every other API process to do the same."""
    if registry.current_version(state.settings.artifacts_dir) is None:
        raise NotFound(f"{state.settings.artifacts_dir} has no current version to load")
    previous = registry.serving_version(state)
    serving = await registry.swap_in(state, reason="admin reload")
    return Reloaded(serving=serving, previous=previous, notified=await registry.notify(state, serving))


@router.post("/rollback", response_model=RolledBack, responses=CHANGES)
async def rollback(state: StateDep) -> RolledBack:
    """Serve the version published before the current one: loaded and validated first, then
    DIR/current is switched to it and every process told."""
    folder = state.settings.artifacts_dir
    target = registry.rollback_target(folder)
    previous = registry.serving_version(state)
    await registry.swap_in(state, reason=f"rollback to {target}", version=target)
    artifact.publish(folder, target, rollback=True)
    return RolledBack(rolled_back_to=target, previous=previous, notified=await registry.notify(state, target))
