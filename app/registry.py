"""Model versions on disk, hot reload and rollback.

Publishing (training, rollback) switches ``DIR/current`` atomically and publishes the
version on the Redis channel; every API process listening loads it in a worker thread,
validates it, and swaps one reference, so requests in flight finish on the old model.
A version that fails validation is refused; the old one keeps serving and the refusal is
kept for ``GET /v1/model``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from app.deps import State
from app.errors import NotFound, StoreUnavailable
from app.scoring import artifact
from app.scoring.catalog import apply_updates
from app.scoring.recommender import Recommender
from app.store.keys import Keys

log = logging.getLogger("shoprec")


def channel(prefix: str) -> str:
    return Keys(prefix).models_channel()


def versions(artifacts_dir: Path) -> list[dict[str, Any]]:
    """Version folders with a manifest, oldest first."""
    out = []
    for folder in sorted(p for p in artifacts_dir.iterdir() if p.is_dir() and not p.is_symlink()):
        try:
            manifest = json.loads((folder / artifact.MANIFEST).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        out.append(
            {
                "model_version": folder.name,
                "created_at": manifest.get("created_at"),
                "metrics": manifest.get("metrics", {}).get("test", {}).get("blend", {}),
                "counts": manifest.get("counts", {}),
            }
        )
    return sorted(out, key=lambda v: v["created_at"] or "")


def current_version(artifacts_dir: Path) -> str | None:
    link = artifacts_dir / artifact.CURRENT
    return link.resolve().name if link.exists() else None


async def reload(state: State, *, reason: str) -> bool:
    """Load DIR/current off the event loop, apply the catalog changes kept in Redis, and
    swap it in; keep the old model on failure."""
    try:
        loaded = await asyncio.to_thread(artifact.load, state.settings.artifacts_dir)
        async with state.swap_lock:
            recommender = await _with_catalog(state, loaded)
            old = state.recommender.version if state.recommender else None
            state.base_artifact, state.recommender = loaded, recommender  # one reference swap
    except (artifact.ArtifactError, OSError, KeyError, ValueError) as exc:
        state.reload_error = f"{reason}: refused: {exc}"
        if state.recommender is None:
            state.load_error = str(exc)
        log.error(json.dumps({"event": "reload_refused", "reason": reason, "error": str(exc)}))
        return False
    state.load_error = state.reload_error = None
    state.metrics.model.info({"version": loaded.version})
    log.info(json.dumps({"event": "model_loaded", "version": loaded.version, "previous": old}))
    return True


async def refresh_catalog(state: State) -> None:
    """Rebuild the serving model from its artifact and every catalog change in Redis."""
    async with state.swap_lock:
        if state.base_artifact is not None:
            state.recommender = await _with_catalog(state, state.base_artifact)


async def _with_catalog(state: State, loaded: artifact.Artifact) -> Recommender:
    try:
        updates = await state.catalog.all()
    except StoreUnavailable as exc:  # serve the model without catalog changes; resynced later
        state.metrics.store_error(exc, "catalog changes of a model build")
        updates = {}
    return await asyncio.to_thread(lambda: Recommender(apply_updates(loaded, updates)))


async def notify(client: redis.Redis, prefix: str, version: str) -> None:
    await client.publish(channel(prefix), version)


def rollback_target(artifacts_dir: Path) -> str:
    """The version created before the current one."""
    names = [v["model_version"] for v in versions(artifacts_dir)]
    current = current_version(artifacts_dir)
    if current not in names or names.index(current) == 0:
        raise NotFound(f"no version older than {current!r} to roll back to")
    return names[names.index(current) - 1]


async def reload_if_changed(state: State, *, reason: str) -> None:
    serving = state.recommender.version if state.recommender else None
    if current_version(state.settings.artifacts_dir) not in (None, serving):
        await reload(state, reason=reason)


async def listen(state: State, client: redis.Redis, stop: asyncio.Event) -> None:
    """Reload on every model notification, rebuild on every catalog change, until ``stop``.

    ``client`` must have no socket timeout (a subscription is idle for hours). After an
    outage it resubscribes and checks ``current`` and the catalog, so a notification missed
    meanwhile is caught up.
    """
    keys = Keys(state.settings.redis_prefix)
    while not stop.is_set():
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(keys.models_channel(), keys.catalog_channel())
                await reload_if_changed(state, reason="resubscribed")
                await refresh_catalog(state)
                while not stop.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["channel"] == keys.catalog_channel():
                        await refresh_catalog(state)
                    else:
                        await reload(state, reason=f"notified of {message['data']}")
        except Exception as exc:  # the listener must survive any outage
            log.warning(json.dumps({"event": "reload_listener_retry", "error": str(exc)}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
