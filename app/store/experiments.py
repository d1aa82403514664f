"""Experiment definitions in Redis: one hash (experiment id -> JSON), changed only by a
compare-and-set on its revision field, so two admins (or processes) cannot both start an
experiment: at most one runs at a time, and every API process reads the same state."""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import ValidationError

from app.errors import Conflict, NotFound
from app.experiments.definition import Experiment, ExperimentDefinition, ExperimentStatus
from app.store.connect import AsyncClient, failures
from app.store.keys import Keys

REVISION = "#revision"  # not a valid experiment id

# KEYS: the hash. ARGV: the revision read, the experiment id, its JSON. 1 written, 0 changed since.
_SWAP = """
if (redis.call('HGET', KEYS[1], ARGV[1]) or '0') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
"""

Change = Callable[[dict[str, Experiment]], Experiment]


class ExperimentStore:
    def __init__(self, client: AsyncClient, keys: Keys) -> None:
        self.client, self.key = client, keys.experiments()
        self._swap = client.register_script(_SWAP)

    async def all(self) -> dict[str, Experiment]:
        """Every stored experiment by id. Raises StoreUnavailable (or StoreFailed)."""
        with failures("experiments not read"):
            raw: dict[str, str] = await self.client.hgetall(self.key)  # type: ignore[assignment]
        return self._parse(raw)[1]

    @staticmethod
    def _parse(raw: dict[str, str]) -> tuple[str, dict[str, Experiment]]:
        out = {}
        for key, value in raw.items():
            if key == REVISION:
                continue
            try:
                out[key] = Experiment.model_validate_json(value)
            except ValidationError:  # written by another schema version: not ours to serve
                continue
        return raw.get(REVISION, "0"), out

    async def _change(self, change: Change) -> Experiment:
        for _ in range(20):
            with failures("experiments not read"):
                raw: dict[str, str] = await self.client.hgetall(self.key)  # type: ignore[assignment]
            revision, current = self._parse(raw)
            updated = change(current)
            with failures("experiment not stored"):
                done = await self._swap(
                    keys=[self.key], args=[REVISION, revision, updated.id, updated.model_dump_json()]
                )
            if done:
                return updated
        raise Conflict("experiments changed concurrently; try again")

    async def define(self, experiment_id: str, definition: ExperimentDefinition) -> Experiment:
        """Create or redefine a draft experiment (409 once it has started)."""

        def change(current: dict[str, Experiment]) -> Experiment:
            old = current.get(experiment_id)
            if old is not None and old.status != ExperimentStatus.draft:
                raise Conflict(
                    f"experiment {experiment_id} is {old.status.value}: only a draft can be redefined"
                )
            return Experiment(id=experiment_id, **definition.model_dump())

        return await self._change(change)

    async def seed(self, experiment: Experiment) -> bool:
        """Store a configured experiment unless one of that id exists (the stored one wins)."""
        with failures("experiment not stored"):
            return bool(await self.client.hsetnx(self.key, experiment.id, experiment.model_dump_json()))

    async def start(self, experiment_id: str) -> Experiment:
        def change(current: dict[str, Experiment]) -> Experiment:
            old = _existing(current, experiment_id)
            if old.status == ExperimentStatus.running:
                return old
            if old.status == ExperimentStatus.stopped:
                raise Conflict(f"experiment {experiment_id} was stopped: define a new one to run again")
            running = [e.id for e in current.values() if e.status == ExperimentStatus.running]
            if running:
                raise Conflict(
                    f"experiment {running[0]} is running: stop it first (one experiment at a time)"
                )
            return old.model_copy(update={"status": ExperimentStatus.running, "started_at": time.time()})

        return await self._change(change)

    async def stop(self, experiment_id: str) -> Experiment:
        def change(current: dict[str, Experiment]) -> Experiment:
            old = _existing(current, experiment_id)
            if old.status == ExperimentStatus.draft:
                raise Conflict(f"experiment {experiment_id} has not started")
            if old.status == ExperimentStatus.stopped:
                return old
            return old.model_copy(update={"status": ExperimentStatus.stopped, "stopped_at": time.time()})

        return await self._change(change)


def _existing(current: dict[str, Experiment], experiment_id: str) -> Experiment:
    if experiment_id not in current:
        raise NotFound(f"no experiment {experiment_id}")
    return current[experiment_id]
