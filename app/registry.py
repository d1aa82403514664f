"""Model versions on disk, hot reload and rollback.

Publishing (training, rollback) switches ``DIR/current`` atomically and publishes the
version on the Redis channel; every API process listening loads it in a worker thread,
validates it, and swaps one reference, so requests in flight finish on the old model.
A version that fails validation is refused; the old one keeps serving and the refusal is
kept for ``GET /v1/model``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from app.deps import State
from app.errors import NotFound
from app.scoring import artifact
from app.scoring.recommender import Recommender

log = logging.getLogger("shoprec")


def channel(prefix: str) -> str:
    return f"{prefix}:models"


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
    """Load DIR/current off the event loop and swap it in; keep the old model on failure."""
    try:
        loaded = await asyncio.to_thread(artifact.load, state.settings.artifacts_dir)
        recommender = await asyncio.to_thread(Recommender, loaded)
    except (artifact.ArtifactError, OSError, KeyError, ValueError) as exc:
        state.reload_error = f"{reason}: refused: {exc}"
        log.error(json.dumps({"event": "reload_refused", "reason": reason, "error": str(exc)}))
        return False
    old = state.recommender.version if state.recommender else None
    state.recommender = recommender  # one reference swap
    state.load_error = state.reload_error = None
    state.metrics.model.info({"version": loaded.version})
    log.info(json.dumps({"event": "model_loaded", "version": loaded.version, "previous": old}))
    return True


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


async def listen(state: State, client: redis.Redis) -> None:
    """Reload on every message of the models channel. ``client`` must have no socket
    timeout (a subscription is idle for hours). After an outage it resubscribes and checks
    ``current`` on disk, so a notification missed meanwhile is caught up."""
    while True:
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(channel(state.settings.redis_prefix))
                await reload_if_changed(state, reason="resubscribed")
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await reload(state, reason=f"notified of {message['data']}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(json.dumps({"event": "reload_listener_retry", "error": str(exc)}))
            await asyncio.sleep(1.0)
