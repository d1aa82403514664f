"""Training configuration: paper defaults in one place, every deviation named.

A config file (JSON) passed with ``--config`` overrides any field, nested by section:
``{"vae": {"epochs": 30}, "cleaning": {"min_user_interactions": 3}}``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import events
from app.scoring.ann import CODECS, ivf_settings
from app.scoring.retrieval import Pools
from models.errors import ConfigError


@dataclass
class CleaningConfig:
    # Weight of one event type in the user's interaction vector (view < click < cart <
    # purchase); defaults from app.events, where every event type is defined.
    event_weights: dict[str, float] = field(default_factory=events.default_weights)
    # Ratings at or above this count as positive (weight ``event_weights["rating"]``);
    # lower ratings are dropped: a 2-star review is not an interest signal.
    rating_threshold: float = events.RATING_THRESHOLD
    drop_duplicates: bool = True
    # Minimum interactions per user and per item, applied repeatedly until both hold at once
    # (a fixed point, as for "5-core" research data). 1 by default: a rare item is still for
    # sale and stays recommendable (item-item and content score it), and a shopper with one
    # purchase still counts for popularity and item-item. Raise them only to test that
    # research convention.
    min_user_interactions: int = 1
    min_item_interactions: int = 1


@dataclass
class SplitConfig:
    """Strong generalization (Liang et al. 2018): held-out users are unseen in training."""

    seed: int = 20261127
    heldout_fraction: float = 0.1  # of users: validation in training, test in make eval
    min_heldout_users: int = 1
    max_heldout_users: int = 10_000  # as Liang et al. on ML-20M; more only slows selection
    foldin_fraction: float = 0.8  # share of each held-out user's items given as history


@dataclass
class VAEConfig:
    """Mult-VAE of Liang et al., WWW 2018. Paper defaults unless stated."""

    hidden: int = 600
    latent: int = 200
    dropout: float = 0.5
    beta_max: float = 0.2
    # Paper: 200,000 annealing steps over 200 epochs of ML-20M, i.e. beta rises through
    # most of training. Our datasets are far smaller, so the schedule is given as a share
    # of the planned steps instead of an absolute count (deviation, same shape).
    anneal_fraction: float = 0.8
    learning_rate: float = 1e-3
    batch_size: int = 500
    # Paper: 200 epochs on ML-20M, best epoch by validation NDCG@100. Deviation: the epoch cap
    # comes from a budget of optimizer steps (ceil(step_budget / batches per epoch), clipped
    # to [min_epochs, max_epochs]) so small data is not cut short and large data does not run
    # for hours; patience is a tenth of the cap (at least min_patience). ``epochs`` and
    # ``patience``, when set, override both.
    epochs: int | None = None
    patience: int | None = None
    # 2000 steps: Online Retail (4k shoppers) gets the paper's 200 epochs, Amazon Beauty (18k)
    # 55, a 1M-shopper shop min_epochs (10); 4000 doubled Beauty's training time.
    step_budget: int = 2000
    min_epochs: int = 10
    max_epochs: int = 200
    # ... and at most this many steps in all (min_epochs included): a 1M-shopper shop (2,000
    # batches an epoch, ~5 minutes each on 2 cores) gets 5 epochs, not min_epochs' 10.
    max_steps: int = 10_000
    min_patience: int = 5
    # Early stopping scores at most this many user x item pairs per epoch (full softmax): all
    # validation users up to 200k items; 2,000 of them at 1M items (170 s an epoch for
    # 10,000). The blend and the reported metrics still use every validation user.
    validation_scores: int = 2_000_000_000
    variational: bool = True  # False gives the Mult-DAE of the same paper
    # Deviation for large catalogs (models/vae_sampled.py): a sampled softmax over the batch's
    # items plus ``negatives`` popularity-drawn items (log-Q corrected) and sparse updates of
    # the item tables. "auto": sampled from ``sampled_above`` items on, full softmax below.
    softmax: str = "auto"
    sampled_above: int = 50_000
    negatives: int = 2000
    l2: float = 0.0  # paper's lambda for Mult-DAE; 0 for the VAE
    seed: int = 20261127


@dataclass
class ItemAEConfig:
    hidden: int = 256
    embedding: int = 64
    # Epochs from a budget of optimizer steps (ceil(step_budget / batches per epoch), within
    # [min_epochs, max_epochs]): a small catalog needs many passes to learn its categories
    # (15 epochs of 300 items gave 53% same-category content neighbours, 100 gave 60%).
    epochs: int | None = None
    step_budget: int = 3000
    min_epochs: int = 10
    max_epochs: int = 200
    batch_size: int = 256
    learning_rate: float = 1e-3
    noise: float = 0.2  # input dropout: a denoising autoencoder generalises to sparse features
    title_buckets: int = 2048  # hashed bag of words of the title
    mapping_l2: float = 1.0  # ridge penalty of the content -> CF embedding map
    # The map trusts an item's decoder row in proportion to its interactions, up to this many
    # (rows of items seen once or twice are mostly their initialisation and the prior).
    mapping_full_weight: int = 5
    seed: int = 20261127


@dataclass
class EASEConfig:
    """The item-item component: EASE (Steck, WWW 2019) and the variants of models/ease.py,
    chosen on validation by coordinate search (lambda, then dropout, attributes, users)."""

    # Walked from the middle towards the better neighbour until one is worse (unimodal).
    lambdas: list[float] = field(default_factory=lambda: [30.0, 100.0, 300.0, 1000.0])
    # EDLAE's emphasised dropout p (0 = EASE).
    dropouts: list[float] = field(default_factory=lambda: [0.0, 0.5])
    # Items' attributes added to the Gram matrix as extra "users" with this weight (0 = none).
    attribute_weights: list[float] = field(default_factory=lambda: [0.0, 4.0, 16.0])
    # Exponent a of the per-user weight |u|^-a in the Gram matrix (0 = every user counts 1).
    user_exponents: list[float] = field(default_factory=lambda: [0.0, 0.25])
    # Popularity deflation exponent beta (0 = none); tried on every fit at no extra cost.
    popularity_exponents: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3])
    # Keep this many largest weights per item row in the exported matrix (sparse, so
    # large catalogs fit); None keeps the dense matrix.
    neighbors: int | None = 500
    # Past this many items the dense inverse does not fit (30k items: 3.6 GB a matrix): a
    # sparse solver of models/ease_sparse.py, ``sparse_solver`` "local" (EASE on each item's
    # ``local_neighbors`` strongest co-occurring items, lambda walked on ``lambdas`` as the
    # exact search does) or "sansa" (the sparse approximate inverse of the ``scale`` extra,
    # ``sparse_nonzeros`` weights per item in each factor, lambda from ``sparse_lambdas``);
    # users' histories capped at ``history_cap`` items. The local solver also tries the
    # ``local_attribute_weights`` (collective EASE, each item's neighbourhood grown by the
    # ``local_attribute_neighbors`` items sharing most of its attributes among those carried
    # by at most ``attribute_max_df`` items; 0: none); SANSA uses interactions only. The
    # local attribute term acts within a neighbourhood only, so its best weight is smaller
    # than the exact model's (Beauty validation NDCG@100: alpha 0.5 0.1255, 1 0.1272,
    # 2 0.1261, 4 0.1223; the exact model's grid step 4 -> 16 is too coarse for it).
    exact_max_items: int = 30_000
    # Beauty validation NDCG@100 (docs/scaling.md): local 0.1154 (200 neighbours; 100: 0.1139,
    # 300: 0.1150), SANSA 0.1036, the exact inverse 0.1129 (all without attributes).
    sparse_solver: str = "local"
    local_neighbors: int = 200
    local_attribute_neighbors: int = 300
    local_attribute_weights: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 4.0])
    attribute_max_df: int = 2_000
    sparse_lambdas: list[float] = field(default_factory=lambda: [10.0, 100.0])
    # 20 weights per item: validation NDCG@100 within 1% of 50 on Beauty and Sports, and the
    # approximate inverse's residual (items x nonzeros^2 entries) 6x smaller: at 1M items 50
    # went past 22 GB.
    sparse_nonzeros: int = 20
    history_cap: int = 200
    # The sparse Gram keeps pairs of items that co-occur in at least this many histories
    # (1 = all). Most pairs co-occur once (90% of the Gram's nonzeros on the 1M-item shop).
    # Dropping them helped SANSA (validation NDCG@100 0.091 -> 0.104 on Beauty, 0.053 ->
    # 0.071 on Sports, docs/scaling.md) and costs the local solver a little (Beauty 0.1154
    # -> 0.1129 with 200 neighbours): 1 by default, 2 in configs/large.json.
    min_cooccurrence: int = 1

    def __post_init__(self) -> None:
        if self.sparse_solver not in ("local", "sansa"):
            raise ConfigError(f"ease.sparse_solver must be local or sansa, not {self.sparse_solver!r}")
        if self.local_neighbors < 1:
            raise ConfigError("ease.local_neighbors must be at least 1")
        if self.local_attribute_neighbors < 0 or self.attribute_max_df < 1:
            raise ConfigError("ease.local_attribute_neighbors must be >= 0 and ease.attribute_max_df >= 1")


@dataclass
class BlendConfig:
    # Final score = sum over components of w_c * z(c), z = per-user standardisation over
    # items; the weights are chosen on validation NDCG@100 by coordinate ascent over ``grid``
    # (models/blend.py).
    components: list[str] = field(default_factory=lambda: ["content", "vae", "ease"])
    grid: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0])
    rounds: int = 2


@dataclass
class RetrievalConfig:
    """How the served artifact scores (app/scoring/recommender.py): ``exhaustive`` scores
    every item, ``two_stage`` retrieves candidates first (app/scoring/retrieval.py); ``auto``
    is exhaustive below ``exhaustive_below`` items, where scoring everything is cheap."""

    mode: str = "auto"
    # Measured on one core (docs/benchmarks.md): at 12k items two stages with the low-rank
    # shortlist cost ~half of scoring everything; at a few thousand items the two are even.
    exhaustive_below: int = 10_000
    # Candidates each component proposes: per_k per item asked for, within
    # [min_per_component, per_component]; defaults and meaning: app.scoring.retrieval.Pools.
    per_component: int = Pools.per_component
    per_k: int = Pools.per_k
    min_per_component: int = Pools.min_per_component
    popular: int = Pools.popular  # popular items that pass the filter, always among the candidates
    exact_limit: int = Pools.exact_limit  # a filter allowing at most this many items scores them all
    max_oversample: int = Pools.max_oversample  # a filter allowing a share s asks each source for 1/s as many
    # Two-stage artifacts from this many items get approximate indexes (faiss IVF,
    # app/scoring/ann.py) for the components' candidates and similar items; below, exact scans.
    ann_from_items: int = 200_000
    ann_nprobe: int = 32
    ann_head_share: float = 0.01  # the most popular items, scanned exactly
    ann_codec: str = "sq8"  # index vectors as 8-bit codes ("flat": float32); see app/scoring/ann.py
    # Two-stage artifacts shortlist each exact scan (below ann_from_items the catalog's, from
    # it the IVF's head) with a projection on the vectors' top ``lowrank_rank`` singular
    # directions (``lowrank_shortlist`` x n items scored exactly; app.scoring.ann.LowRankIndex);
    # 0 turns it off. Each index gets the lowest rank (32, 48, ... at most ``lowrank_rank``)
    # whose shortlist keeps ``lowrank_min_recall`` of the exact top 100 on typical queries,
    # measured at export (an index no rank keeps at it stays exact): the rank that does varies
    # by data (Beauty's MIPS 32, Sports' 48; docs/benchmarks.md, "Low-rank shortlists").
    # ``lowrank_ranks`` fixes the rank of single indexes ("component.index");
    # ``lowrank_min_recall`` 0 gives every index ``lowrank_rank``.
    lowrank_rank: int = 64
    lowrank_ranks: dict[str, int] = field(default_factory=dict)
    lowrank_min_recall: float = 0.995
    lowrank_shortlist: int = 3

    def resolved(self, n_items: int) -> str:
        if self.mode not in ("auto", "exhaustive", "two_stage"):
            raise ConfigError(f"retrieval.mode must be auto, exhaustive or two_stage, not {self.mode!r}")
        if self.mode == "auto":
            return "exhaustive" if n_items < self.exhaustive_below else "two_stage"
        return self.mode

    def ann(self, n_items: int) -> dict[str, Any] | None:
        """The manifest's ``retrieval.ann`` (app.scoring.ann.IVFSettings), or None."""
        if self.ann_codec not in CODECS:
            raise ConfigError(
                f"retrieval.ann_codec must be one of {', '.join(CODECS)}, not {self.ann_codec!r}"
            )
        if self.resolved(n_items) != "two_stage" or n_items < self.ann_from_items:
            return None
        settings = ivf_settings(
            n_items, head_share=self.ann_head_share, nprobe=self.ann_nprobe, codec=self.ann_codec
        )
        return dataclasses.asdict(settings)

    def lowrank(self, n_items: int) -> dict[str, Any] | None:
        """The manifest's ``retrieval.lowrank`` (app.scoring.ann.LowRankSettings), or None."""
        if self.resolved(n_items) != "two_stage" or self.lowrank_rank <= 0:
            return None
        for key, rank in self.lowrank_ranks.items():
            if key.count(".") != 1 or not isinstance(rank, int) or rank <= 0:
                raise ConfigError(
                    f'retrieval.lowrank_ranks maps "component.index" to a rank >= 1, not {key!r}: {rank!r}'
                )
        if not 0 <= self.lowrank_min_recall <= 1:
            raise ConfigError(
                f"retrieval.lowrank_min_recall must be within [0, 1], not {self.lowrank_min_recall!r}"
            )
        return {"rank": self.lowrank_rank, "ranks": dict(self.lowrank_ranks),
                "shortlist": self.lowrank_shortlist, "min_recall": self.lowrank_min_recall}  # fmt: skip


@dataclass
class TrainConfig:
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    item_ae: ItemAEConfig = field(default_factory=ItemAEConfig)
    ease: EASEConfig = field(default_factory=EASEConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        config = cls()
        if not isinstance(data, dict):
            raise ConfigError('a config is a JSON object of sections, e.g. {"vae": {"epochs": 20}}')
        for section, values in data.items():
            if not hasattr(config, section):
                raise ConfigError(f"unknown config section {section!r}")
            if not isinstance(values, dict):
                raise ConfigError(f"config section {section!r} must be a JSON object")
            target = getattr(config, section)
            for key, value in values.items():
                if not hasattr(target, key):
                    raise ConfigError(f"unknown config key {section}.{key}")
                setattr(target, key, value)
        return config

    @classmethod
    def from_file(cls, path: Path) -> TrainConfig:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}") from exc
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
