"""This process's copy of the experiments (the running one assigns users on the request
path without a Redis read), refreshed from Redis every ``experiments_refresh_s``; the
process that changes an experiment applies the change at once, the others within one
refresh. Assignment itself needs nobody: it is a hash of (experiment id, user id)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import lru_cache
from pathlib import Path

from pydantic import TypeAdapter

from app.errors import Conflict, StoreUnavailable
from app.experiments.definition import (
    Assignment,
    Experiment,
    ExperimentDefinition,
    ExperimentStatus,
    assign,
)
from app.store.experiments import ExperimentStore
from app.store.feedback import Attribution

log = logging.getLogger("shoprec")


class ExperimentBook:
    def __init__(self, store: ExperimentStore, *, counters_ttl_s: int) -> None:
        self.store = store
        self.counters_ttl_s = counters_ttl_s
        self.running: Experiment | None = None
        self._changes = 0  # local changes so far: a refresh read before one is stale
        self._attribution = Attribution("", lambda user: "", counters_ttl_s)

    def apply(self, experiments: dict[str, Experiment]) -> None:
        running = next((e for e in experiments.values() if e.status == ExperimentStatus.running), None)
        if running == self.running:
            return
        self.running = running
        if running is None:
            self._attribution = Attribution("", lambda user: "", self.counters_ttl_s)
            return

        @lru_cache(maxsize=65_536)
        def group_of(user: str) -> str:
            return assign(running, user).group

        self._attribution = Attribution(running.id, group_of, self.counters_ttl_s)

    def changed(self, experiment: Experiment) -> None:
        """An experiment this process just changed (the others see it at their next refresh)."""
        self._changes += 1
        if experiment.status == ExperimentStatus.running:
            self.apply({experiment.id: experiment})
        elif self.running is not None and self.running.id == experiment.id:
            self.apply({})

    async def refresh(self) -> None:
        """Take Redis's state, unless this process changed an experiment while it was read
        (that read may predate the change and would undo it until the next refresh)."""
        changes = self._changes
        experiments = await self.store.all()
        if changes == self._changes:
            self.apply(experiments)

    def assignment(self, unit: str | None) -> Assignment | None:
        """The group of a user or session in the running experiment (None: no experiment,
        or an anonymous request without a session)."""
        if self.running is None or unit is None:
            return None
        return assign(self.running, unit)

    def attribution(self) -> Attribution:
        return self._attribution

    async def keep_fresh(self, interval_s: float, stop: asyncio.Event) -> None:
        """Refresh until ``stop``; a Redis outage keeps the last known state."""
        while not stop.is_set():
            try:
                await self.refresh()
            except StoreUnavailable as exc:
                log.debug("experiments not refreshed: %s", exc.message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)


async def seed_experiments(book: ExperimentBook, path: Path | None) -> None:
    """Store the experiments of SHOPREC_EXPERIMENTS_FILE that Redis does not hold yet, and
    start those marked running (the stored state wins: the admin API may have changed them
    since). A file that does not parse fails start-up; Redis down, or a second running
    experiment, only logs."""
    if path is not None:
        configured = TypeAdapter(list[Experiment]).validate_json(path.read_bytes())
        try:
            stored = await book.store.all()
            for experiment in configured:
                if experiment.id in stored:
                    continue
                definition = ExperimentDefinition(**experiment.model_dump(include=DEFINITION_FIELDS))
                await book.store.define(experiment.id, definition)
                if experiment.status == ExperimentStatus.running:
                    await book.store.start(experiment.id)
        except (StoreUnavailable, Conflict) as exc:
            log.warning("experiments of %s not all stored: %s", path, exc.message)
    with contextlib.suppress(StoreUnavailable):
        await book.refresh()


DEFINITION_FIELDS = set(ExperimentDefinition.model_fields)
