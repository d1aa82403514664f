"""The manifest of an artifact version, typed: what training promises and serving reads.

Written by ``models/pipeline.py`` through :func:`app.scoring.artifact.write`, validated when
a version is loaded (a manifest that does not match is refused, naming the field).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

SCHEMA_VERSION = 3


class Counts(BaseModel):
    users: int = Field(description="known users: their histories are in the artifact")
    items: int
    warm_items: int = Field(description="items with training interactions")
    interactions: int = Field(description="user-item pairs the served model was fitted on")
    train_users: int = Field(description="users that fitted the models whose settings were chosen")
    validation_users: int = Field(description="users that chose the settings (then refitted on)")


class EventRules(BaseModel):
    """How events become history weights, exactly as training applied them."""

    weights: dict[str, float]
    rating_threshold: float


class AnnIndex(BaseModel):
    """Approximate nearest-neighbour indexes in the version folder (app.scoring.ann)."""

    nlist: int = Field(gt=0, description="IVF clusters")
    nprobe: int = Field(gt=0, description="clusters searched per query")
    head: int = Field(ge=0, description="most popular items, kept out of the IVF and scanned exactly")
    codec: Literal["flat", "sq8"] = Field(
        "flat", description="vectors as float32, or 8-bit with the fetched ids ranked exactly"
    )
    head_indexes: list[str] | None = Field(
        None,
        description='indexes ("component.index") that keep the head out of the IVF, those whose score '
        "favours popular items; the others hold every item. None: every index (older artifacts)",
    )


class LowRankShortlist(BaseModel):
    """Shortlisting projections in the version folder (app.scoring.ann.LowRankIndex)."""

    rank: int = Field(
        gt=0, description="the highest rank (only indexes more than twice as wide are projected)"
    )
    ranks: dict[str, PositiveInt] = Field(
        default_factory=dict, description='the rank of each projected index, "component.index"'
    )
    min_recall: float = Field(
        0.0, ge=0, le=1, description="the recall@100 of the exact scan each index's rank was chosen to keep"
    )
    shortlist: int = Field(gt=0, description="items scored exactly per item asked for")


class Retrieval(BaseModel):
    """How serving scores (app.scoring.recommender): every item, or candidates first."""

    mode: Literal["exhaustive", "two_stage"]
    pools: dict[str, int] = Field(default_factory=dict, description="app.scoring.retrieval.Pools")
    ann: AnnIndex | None = Field(default=None, description="None: candidates by exact scans")
    lowrank: LowRankShortlist | None = Field(
        default=None,
        description="exact scans shortlisted by a low-rank projection (the catalog's; with `ann` the heads')",
    )


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int
    model_version: str
    created_at: str
    data_fingerprint: str
    code_revision: str | None = None
    source: dict[str, Any] = Field(default_factory=dict, description="where the base data came from")
    consumed: dict[str, Any] = Field(default_factory=dict, description="feedback stream cursor included")
    counts: Counts
    components: list[str] = Field(description="blend components, in app.scoring.components order")
    blend_weights: dict[str, float]
    events: EventRules
    hyperparameters: dict[str, Any] = Field(description="the training configuration")
    metrics: dict[str, Any] = Field(description="validation metrics of the selection models")
    training: dict[str, Any] = Field(default_factory=dict, description="the training report")
    feature_space: dict[str, Any]
    retrieval: Retrieval
    dims: dict[str, int]
    sizes: dict[str, int] = Field(description="bytes of every file: checked at every load")
    checksums: dict[str, str] = Field(description="sha256 of every file: checked when published")
