"""A/B experiments (admin key): define, list, start, stop, and read results with statistics.

At most one experiment runs at a time; every API process assigns its users by the same hash
(app.experiments.definition) and sees a change within SHOPREC_EXPERIMENTS_REFRESH_S.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app.auth import ADMIN
from app.deps import StateDep
from app.errors import BODY_ERRORS, NotFound, responses
from app.experiments.definition import Experiment, ExperimentDefinition
from app.experiments.results import ExperimentResults, build

router = APIRouter(prefix="/v1/admin/experiments", tags=["experiments"], dependencies=[ADMIN])
ExperimentId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
CHANGES = responses(401, 403, 404, 409, 503)


@router.get("", response_model=list[Experiment], responses=responses(401, 403, 503))
async def list_experiments(state: StateDep) -> list[Experiment]:
    """Every experiment, with its status (draft, running, stopped)."""
    experiments = await state.experiments.store.all()
    return sorted(experiments.values(), key=lambda e: e.id)


@router.put(
    "/{experiment_id}", response_model=Experiment, responses=responses(401, 403, 409, 503, *BODY_ERRORS)
)
async def define_experiment(
    experiment_id: ExperimentId, body: ExperimentDefinition, state: StateDep
) -> Experiment:
    """Create an experiment, or redefine it while it is a draft (409 once started)."""
    return await state.experiments.store.define(experiment_id, body)


@router.post("/{experiment_id}/start", response_model=Experiment, responses=CHANGES)
async def start_experiment(experiment_id: ExperimentId, state: StateDep) -> Experiment:
    """Start assigning users (409 if another experiment runs, or this one was stopped)."""
    started = await state.experiments.store.start(experiment_id)
    state.experiments.changed(started)
    return started


@router.post("/{experiment_id}/stop", response_model=Experiment, responses=CHANGES)
async def stop_experiment(experiment_id: ExperimentId, state: StateDep) -> Experiment:
    """Stop assigning and counting; the results stay readable."""
    stopped = await state.experiments.store.stop(experiment_id)
    state.experiments.changed(stopped)
    return stopped


@router.get("/{experiment_id}", response_model=ExperimentResults, responses=responses(401, 403, 404, 503))
async def experiment_results(experiment_id: ExperimentId, state: StateDep) -> ExperimentResults:
    """Per group: users, impressions, clicks, add-to-carts, purchases, rates per shown item
    with 95% intervals, and each variant's difference to the control with a p-value."""
    experiment = (await state.experiments.store.all()).get(experiment_id)
    if experiment is None:
        raise NotFound(f"no experiment {experiment_id}")
    await state.attribution.flush()  # implicit impressions of the lists answered here
    totals = await state.attribution.totals(experiment.id, experiment.group_names())
    settings = state.settings
    return build(
        experiment,
        totals,
        min_users=settings.experiment_min_users,
        min_outcomes=settings.experiment_min_events,
    )
