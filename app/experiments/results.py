"""An experiment's results from its counters: per group, users, impressions, outcomes, rates
per shown item with 95% intervals, and each variant's difference to the control with a
p-value (app.experiments.stats: user-level delta method)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

from app.events import EXPOSURE, OUTCOMES
from app.experiments import stats
from app.experiments.definition import CONTROL, Experiment

# The rate each outcome gives, per shown item.
RATE_NAMES = {"click": "click_through_rate", "add_to_cart": "add_to_cart_rate", "purchase": "conversion_rate"}
ALPHA = 0.05
METHOD = (
    "frequentist, user-level: each rate is sum(outcome) / sum(impressions) over the group's users, "
    "its standard error from the delta method over per-user counts; the difference to the control "
    "is tested with a two-sided z-test (alpha 0.05), 95% normal intervals. Fixed horizon: decide the "
    "sample size before starting and read the p-value once at the end (peeking inflates false positives)."
)


class Interval(BaseModel):
    value: float | None = Field(description="None until the group has impressions")
    low: float | None = Field(None, description="95% confidence interval, lower end")
    high: float | None = Field(None, description="95% confidence interval, upper end")


class Comparison(BaseModel):
    difference: Interval = Field(description="this group's rate minus the control's, with its 95% interval")
    relative_lift: float | None = Field(description="difference / control rate")
    p_value: float = Field(description="two-sided, H0: equal rates")
    significant: bool = Field(description="p < 0.05 and both groups past the minimum sample")


class GroupResult(BaseModel):
    name: str
    users: int = Field(description="users (or sessions) with attributed events in this group")
    impressions: int
    clicks: int
    add_to_carts: int
    purchases: int
    rates: dict[str, Interval] = Field(description="per shown item: click_through_rate, add_to_cart_rate, "
                                       "conversion_rate (purchases)")  # fmt: skip
    vs_control: dict[str, Comparison] | None = Field(None, description="per rate; None for the control")


class ExperimentResults(BaseModel):
    experiment: Experiment
    control: str
    groups: list[GroupResult]
    method: str = METHOD
    min_users: int = Field(description="users each compared group needs before significance is claimed")
    min_outcomes: int = Field(description="events of an outcome each compared group needs, likewise")
    warnings: list[str] = Field(default_factory=list)


def _sums(totals: Mapping[str, float], outcome: str) -> stats.Sums:
    return stats.Sums(
        n=int(totals.get("users", 0)),
        x=totals.get(EXPOSURE, 0.0),
        y=totals.get(outcome, 0.0),
        xx=totals.get(f"{EXPOSURE}:sq", 0.0),
        yy=totals.get(f"{outcome}:sq", 0.0),
        xy=totals.get(f"{outcome}:x", 0.0),
    )


def _interval(rate: stats.Rate) -> Interval:
    bounds = rate.interval()
    return Interval(value=rate.value, low=bounds[0] if bounds else None, high=bounds[1] if bounds else None)


def build(
    experiment: Experiment, totals: Mapping[str, Mapping[str, float]], *, min_users: int, min_outcomes: int
) -> ExperimentResults:
    """totals: group name -> summed counters (app.store.experiments.totals)."""
    control = CONTROL
    rates = {
        group: {o: stats.ratio(_sums(totals.get(group, {}), o)) for o in OUTCOMES}
        for group in experiment.group_names()
    }
    warnings: list[str] = []
    groups = []
    for group in experiment.group_names():
        t = totals.get(group, {})
        users = int(t.get("users", 0))
        result = GroupResult(
            name=group,
            users=users,
            impressions=int(t.get(EXPOSURE, 0)),
            clicks=int(t.get("click", 0)),
            add_to_carts=int(t.get("add_to_cart", 0)),
            purchases=int(t.get("purchase", 0)),
            rates={RATE_NAMES[o]: _interval(rates[group][o]) for o in OUTCOMES},
        )
        if group != control:
            result.vs_control = {}
            for o in OUTCOMES:
                diff = stats.difference(rates[group][o], rates[control][o])
                if diff is None:
                    continue
                enough = _enough(totals, (group, control), o, min_users, min_outcomes)
                if not enough and diff.p_value < ALPHA:
                    warnings.append(
                        f"{group} vs {control}, {RATE_NAMES[o]}: p = {diff.p_value:.3g} but below the "
                        f"minimum sample ({min_users} users and {min_outcomes} {o} events per group): "
                        "not significant yet"
                    )
                result.vs_control[RATE_NAMES[o]] = Comparison(
                    difference=Interval(
                        value=diff.value,
                        low=diff.value - stats.Z95 * diff.se,
                        high=diff.value + stats.Z95 * diff.se,
                    ),
                    relative_lift=diff.relative,
                    p_value=diff.p_value,
                    significant=enough and diff.p_value < ALPHA,
                )
        groups.append(result)
    short = [g.name for g in groups if g.users < min_users]
    if short:
        warnings.insert(0, f"fewer than {min_users} users so far in: {', '.join(short)}")
    return ExperimentResults(
        experiment=experiment,
        control=control,
        groups=groups,
        min_users=min_users,
        min_outcomes=min_outcomes,
        warnings=warnings,
    )


def _enough(
    totals: Mapping[str, Mapping[str, float]],
    groups: tuple[str, str],
    outcome: str,
    min_users: int,
    min_outcomes: int,
) -> bool:
    return all(
        totals.get(g, {}).get("users", 0) >= min_users and totals.get(g, {}).get(outcome, 0) >= min_outcomes
        for g in groups
    )
