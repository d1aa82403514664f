"""Model versions on disk, hot reload and rollback.

Publishing (training, rollback) switches ``DIR/current`` atomically, records it in the
publish history and announces the version on the Redis channel; every API process listening
loads it in a worker thread, validates it, and swaps one reference, so requests in flight
finish on the old model. A version that fails validation is refused; the old one keeps
serving and the refusal is kept for ``GET /v1/model``. A rollback loads and validates its
target before ``current`` is switched, so a refused target leaves disk and memory as they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from app.deps import State
from app.errors import ArtifactsUnavailable, NotFound, StoreUnavailable, VersionRefused
from app.observability import settle_heap
from app.scoring import artifact, publications
from app.scoring.recommender import Recommender
from app.store.catalog import CatalogState
from app.store.connect import failures
from app.store.keys import Keys

log = logging.getLogger("shoprec")


def channel(prefix: str) -> str:
    return Keys(prefix).models_channel()


def versions(artifacts_dir: Path) -> list[dict[str, Any]]:
    """Version folders with a manifest, oldest first; ``published``: ever switched to."""
    history = publications.read(artifacts_dir) or []
    published = {entry.model_version for entry in history}
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
                "metrics": manifest.get("metrics", {}).get("validation", {}).get("blend", {}),
                "counts": manifest.get("counts", {}),
                "published": folder.name in published,
            }
        )
    return sorted(out, key=lambda v: v["created_at"] or "")


def current_version(artifacts_dir: Path) -> str | None:
    link = artifacts_dir / artifact.CURRENT
    return link.resolve().name if link.exists() else None


def serving_version(state: State) -> str | None:
    return state.recommender.version if state.recommender is not None else None


async def reload(state: State, *, reason: str) -> bool:
    """swap_in DIR/current; False (the old model keeps serving) when it was refused."""
    try:
        await swap_in(state, reason=reason)
    except (VersionRefused, ArtifactsUnavailable):
        return False
    return True


async def swap_in(state: State, *, reason: str, version: str | None = None) -> str:
    """Load DIR/current (or DIR/``version``) off the event loop, validate it, apply the catalog
    changes kept in Redis and swap it in (one reference: requests in flight finish on the old
    model). Returns the version now serving.

    Raises VersionRefused (it failed validation) or ArtifactsUnavailable (the directory could
    not be read); then the old model keeps serving and the refusal is kept for GET /v1/model.
    """
    folder = state.settings.artifacts_dir
    try:
        loaded = await asyncio.to_thread(_load, folder / version if version else folder)
        async with state.swap_lock:
            recommender, revision = await _with_catalog(state, loaded, cause="model")
            old = serving_version(state)
            state.base_artifact, state.recommender = loaded, recommender  # one reference swap
            state.catalog_revision = revision
    except (artifact.ArtifactError, KeyError, ValueError) as exc:
        raise VersionRefused(_refused(state, reason, exc)) from exc
    except OSError as exc:
        raise ArtifactsUnavailable(_refused(state, reason, exc)) from exc
    state.load_error = state.reload_error = None
    settle_heap()  # the new model's objects out of the collector's walk (the old ones are freed)
    state.metrics.model.info({"version": loaded.version})
    log.info(json.dumps({"event": "model_loaded", "version": loaded.version, "previous": old}))
    return loaded.version


def _refused(state: State, reason: str, exc: Exception) -> str:
    state.reload_error = f"{reason}: refused: {exc}"
    if state.recommender is None:
        state.load_error = str(exc)
    log.error(json.dumps({"event": "reload_refused", "reason": reason, "error": str(exc)}))
    return state.reload_error


async def refresh_catalog(state: State, *, revision: int | None = None, resync: bool = False) -> None:
    """Bring the serving model up to the catalog changes in Redis, unless it already holds
    catalog ``revision`` (None: check). Changes are applied to the serving model in place,
    only those it does not hold yet (O(1) per change: no rebuild of the recommender); one
    application per process per change: the route that wrote a change applies it, and skips
    its own announcement of it.

    Revisions only grow while Redis keeps its data; ``resync`` (after a reconnection, when
    Redis may have restarted empty) checks on any difference, not only on a newer one, and a
    change Redis no longer holds rebuilds the model from its artifact.
    """
    async with state.swap_lock:
        recommender = state.recommender
        if state.base_artifact is None or recommender is None:
            return
        held = state.catalog_revision
        if revision is not None and held is not None and (revision == held if resync else revision <= held):
            return
        try:
            catalog = await state.catalog.read()
        except StoreUnavailable as exc:
            state.metrics.store_error(exc, "catalog changes")
            return
        applied = recommender.catalog_entries
        if set(applied) - set(catalog.entries):  # Redis lost changes: back to the artifact
            state.recommender, state.catalog_revision = await _with_catalog(
                state, state.base_artifact, cause="catalog"
            )
            return
        changes = {k: v for k, v in catalog.entries.items() if k not in applied or applied[k] != v}
        if changes:
            recommender.apply_changes(changes)
            state.metrics.builds.labels("catalog").inc()
        state.catalog_revision = catalog.revision


def _load(path: Path) -> artifact.Artifact:
    loaded = artifact.load(path)
    artifact.prefault(loaded)  # before it serves: no page faults in its first requests
    return loaded


async def _with_catalog(
    state: State, loaded: artifact.Artifact, *, cause: str
) -> tuple[Recommender, int | None]:
    """A serving model of ``loaded`` with every catalog change, and the catalog revision it
    holds (None: Redis could not be read, so none; a later refresh catches up)."""
    try:
        catalog = await state.catalog.read()
    except StoreUnavailable as exc:  # serve the model without catalog changes; resynced later
        state.metrics.store_error(exc, "catalog changes of a model build")
        catalog = CatalogState(revision=-1, entries={})
    state.metrics.builds.labels(cause).inc()

    def build() -> Recommender:
        recommender = Recommender(loaded)
        recommender.apply_changes(catalog.entries)
        return recommender

    recommender = await asyncio.to_thread(build)
    return recommender, None if catalog.revision < 0 else catalog.revision


async def notify(state: State, version: str) -> bool:
    """Tell every API process (over Redis pub/sub) to load ``version``; False when Redis could
    not be told (the others catch up when they resubscribe: they compare ``current``)."""
    try:
        with failures("model change not announced"):
            await state.publisher.publish(channel(state.settings.redis_prefix), version)
    except StoreUnavailable as exc:
        state.metrics.store_error(exc, "model notification")
        return False
    return True


def rollback_target(artifacts_dir: Path) -> str:
    """The version published before the serving one (app.scoring.publications)."""
    history = publications.read(artifacts_dir)
    if history is None:
        raise NotFound(
            f"{artifacts_dir} has no publish history ({publications.HISTORY}) to roll back through; "
            "it starts with the next publication"
        )
    stack = publications.published_stack(history)
    current = current_version(artifacts_dir)
    while stack and stack[-1] == current:
        stack.pop()
    if not stack:
        raise NotFound(f"no version was published before {current!r}: nothing to roll back to")
    return stack[-1]


async def reload_if_changed(state: State, *, reason: str) -> None:
    if current_version(state.settings.artifacts_dir) not in (None, serving_version(state)):
        await reload(state, reason=reason)


async def listen(state: State, client: aioredis.Redis, stop: asyncio.Event) -> None:
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
                await refresh_catalog(state, revision=await state.catalog.revision(), resync=True)
                while not stop.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["channel"] == keys.catalog_channel():
                        await refresh_catalog(state, revision=_revision(message["data"]))
                    elif message["data"] != serving_version(state):  # not this process's own
                        await reload(state, reason=f"notified of {message['data']}")
        except Exception as exc:  # the listener must survive any outage
            log.warning(json.dumps({"event": "reload_listener_retry", "error": str(exc)}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


def _revision(data: str) -> int | None:
    """The revision a catalog notification announces (None: not one, so rebuild)."""
    return int(data) if data.isdigit() else None
