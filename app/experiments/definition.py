"""Experiment definitions and the deterministic, sticky assignment of a user to a variant.

An experiment splits the users (or anonymous sessions: the ``session_id`` request field) of
the recommendation routes between variants by traffic share; an optional holdout share is
served the service's defaults and reported beside the variants as ``_holdout`` (no variant
name starts with ``_``). A user's variant is a pure function of the experiment id and the
user id (SHA-256 of both, as a number in [0, 1)), so every API process assigns the same
variant without asking anyone, and a user keeps their variant for the whole experiment.
Variants are keyed by name; the one named ``control`` is what the others are compared to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.scoring.recommender import Strategy

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, examples=["ease-heavy"])]
# JSON numbers as they are (false is not 0), as app.schemas.Number.
Share = Annotated[float, Field(strict=True, gt=0, le=1, allow_inf_nan=False)]
Fraction = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
COMPONENTS = ("vae", "ease", "content")  # app.scoring.components
CONTROL = "control"
HOLDOUT = "_holdout"


class ExperimentStatus(StrEnum):
    draft = "draft"  # defined, never started: may be redefined
    running = "running"  # assigning users and counting their feedback
    stopped = "stopped"  # kept for its results; cannot run again


class Variant(BaseModel):
    """What a variant changes; a field left out keeps the service's default."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"share": 0.5, "weights": {"ease": 2, "vae": 1}}]},
    )

    share: Share = Field(description="traffic share (relative: shares are normalised to sum to 1)")
    weights: dict[str, Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)]] | None = (
        Field(
            None,
            description="blend weights per model component: vae, ease, content (the artifact's when absent)",
            json_schema_extra={
                "propertyNames": {"enum": list(COMPONENTS)},
                # At least one positive weight (the validator below), as JSON Schema says it.
                "allOf": [
                    {
                        "anyOf": [
                            {"required": [c], "properties": {c: {"exclusiveMinimum": 0}}} for c in COMPONENTS
                        ]
                    }
                ],
            },
        )
    )
    strategy: Strategy | None = Field(
        None, description="popular: serve the most popular items to everyone in this variant"
    )
    diversity: Fraction | None = Field(
        None, description="diversity 0-1: replaces the request's (the request's when absent)"
    )
    exploration: Fraction | None = Field(
        None, description="share of exploration slots 0-1: replaces the request's (the request's when absent)"
    )

    @model_validator(mode="after")
    def _some_weight(self) -> Variant:
        if self.weights is not None and set(self.weights) - set(COMPONENTS):
            raise ValueError(f"weights name model components: {', '.join(COMPONENTS)}")
        if self.weights is not None and not any(w > 0 for w in self.weights.values()):
            # A zero blend would rank by nothing.
            raise ValueError("weights need at least one positive blend weight")
        return self


class ExperimentDefinition(BaseModel):
    """An experiment as an admin defines it (PUT /v1/admin/experiments/{id}, or the file of
    SHOPREC_EXPERIMENTS_FILE)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "description": "does more weight on the item-item model sell more?",
                    "variants": {
                        "control": {"share": 0.5},
                        "ease-heavy": {"share": 0.5, "weights": {"ease": 2, "vae": 1}},
                    },
                    "holdout": 0.0,
                }
            ]
        },
    )

    description: str = Field("", max_length=500)
    variants: dict[Name, Variant] = Field(
        min_length=2,
        max_length=10,
        description="by name; 'control' is required: the variant the others are compared to",
        json_schema_extra={"required": [CONTROL], "propertyNames": {"pattern": NAME_PATTERN}},
    )
    holdout: float = Field(
        0.0,
        strict=True,
        ge=0,
        le=0.5,
        allow_inf_nan=False,
        description=f"share of users kept out of every variant (served the defaults; group '{HOLDOUT}')",
    )

    @model_validator(mode="after")
    def _has_control(self) -> ExperimentDefinition:
        if CONTROL not in self.variants:
            raise ValueError(f"one variant must be named '{CONTROL}': the others are compared to it")
        return self


class Experiment(ExperimentDefinition):
    """A stored experiment: its definition, id and life cycle."""

    model_config = ConfigDict(extra="forbid")

    id: Name
    status: ExperimentStatus = ExperimentStatus.draft
    started_at: float | None = None
    stopped_at: float | None = None

    def group_names(self) -> list[str]:
        """The control, the other variants, then the holdout group when there is one."""
        others = [name for name in self.variants if name != CONTROL]
        return [CONTROL, *others] + ([HOLDOUT] if self.holdout > 0 else [])


@dataclass(frozen=True)
class Assignment:
    experiment_id: str
    group: str  # a variant's name, or HOLDOUT
    variant: Variant | None  # None for the holdout group


def bucket(experiment_id: str, unit: str) -> float:
    """A stable number in [0, 1) for (experiment, user): the first 8 bytes of SHA-256."""
    digest = hashlib.sha256(f"{experiment_id}\x1f{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(experiment: Experiment, unit: str) -> Assignment:
    """The group of one user (or session) in a running experiment; always the same."""
    point = bucket(experiment.id, unit)
    if point < experiment.holdout:
        return Assignment(experiment.id, HOLDOUT, None)
    point = (point - experiment.holdout) / (1.0 - experiment.holdout)
    total = sum(v.share for v in experiment.variants.values())
    edge = 0.0
    for name, variant in experiment.variants.items():
        edge += variant.share / total
        if point < edge:
            return Assignment(experiment.id, name, variant)
    name, last = list(experiment.variants.items())[-1]  # rounding: point within 1e-16 of 1
    return Assignment(experiment.id, name, last)
