"""The evaluation behind ``make eval``: strong generalization with test users held out of the
data *before* cleaning and training, the same training command (selection + refit) on the
rest, the exported artifact scored by the serving code on the test users' raw targets, and
the references of :mod:`models.references` on the same rows and validation users.

Raw targets: a target item the artifact does not know counts as a miss (it still counts in
the ideal DCG), as it would for a live shopper.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from app.scoring import artifact
from app.scoring.recommender import Filters, Recommender, Rerank
from app.scoring.scorer import top_k
from models.config import TrainConfig
from models.data import Dataset, clean, load
from models.metrics import ndcg_at_k, recall_at_k, summarize
from models.pipeline import Log, TrainResult, run
from models.references import REFERENCES
from models.split import hold_out_users

K = 100


@dataclass(frozen=True)
class Source:
    name: str
    interactions: str
    items: str | None
    fmt: str


SOURCES = {
    "online-retail": Source("online-retail", "online-retail/online_retail.parquet", None, "online-retail"),
    "amazon-beauty": Source(
        "amazon-beauty", "amazon-beauty/Beauty.txt", "amazon-beauty/Beauty_item2attributes.json", "s3rec"
    ),
    "amazon-sports": Source(
        "amazon-sports",
        "amazon-sports/Sports_and_Outdoors.txt",
        "amazon-sports/Sports_and_Outdoors_item2attributes.json",
        "s3rec",
    ),
}


def load_source(source: Source, data_dir: Path) -> Dataset:
    items = data_dir / source.items if source.items else None
    return load(data_dir / source.interactions, items, fmt=source.fmt)


@dataclass
class Heldout:
    """Test users' cleaned histories split into fold-in (item id, weight) and target ids."""

    user_ids: list[str]
    foldin: list[list[tuple[str, float]]]
    targets: list[list[str]]


def hold_out(dataset: Dataset, config: TrainConfig) -> tuple[Dataset, Heldout]:
    """(the training file without the test users, the test users' fold-in and targets).

    Test users' rows go through the same row rules as training (no minimum counts: a
    shopper's history is what it is); 80% of their items are fold-in, 20% targets."""
    train_rows, test_rows = hold_out_users(dataset.interactions, config.split)
    rules = dataclasses.replace(config.cleaning, min_user_interactions=1, min_item_interactions=1)
    pairs = clean(Dataset(test_rows, dataset.items), rules, source="test users").interactions
    rng = np.random.default_rng([config.split.seed, 2])
    heldout = Heldout([], [], [])
    for user, rows in pairs.groupby("user_id", sort=True):
        items, weights = rows["item_id"].to_numpy(), rows["weight"].to_numpy()
        if len(items) < 2:
            continue
        n_target = max(1, round((1 - config.split.foldin_fraction) * len(items)))
        is_target = np.zeros(len(items), bool)
        is_target[rng.choice(len(items), n_target, replace=False)] = True
        heldout.user_ids.append(str(user))
        heldout.foldin.append(
            [(str(i), float(w)) for i, w in zip(items[~is_target], weights[~is_target], strict=True)]
        )
        heldout.targets.append([str(i) for i in items[is_target]])
    train = Dataset(train_rows, dataset.items, dict(dataset.dropped))
    return train, heldout


@dataclass
class Mapped:
    """Held-out users in an artifact's item space: fold-in (n_users, n_items) with unknown
    items dropped; targets over n_items + the unknown target items (never ranked: misses)."""

    foldin: sp.csr_matrix
    target: sp.csr_matrix
    n_items: int


def map_heldout(heldout: Heldout, item_ids: list[str]) -> Mapped:
    index = {item: i for i, item in enumerate(item_ids)}
    unknown: dict[str, int] = {}
    rows, cols, data, t_rows, t_cols = [], [], [], [], []
    for u, (foldin, targets) in enumerate(zip(heldout.foldin, heldout.targets, strict=True)):
        for item, weight in foldin:
            if item in index:
                rows.append(u)
                cols.append(index[item])
                data.append(weight)
        for item in targets:
            if item not in index:
                unknown.setdefault(item, len(index) + len(unknown))
            t_rows.append(u)
            t_cols.append(index[item] if item in index else unknown[item])
    n_users, n_items = len(heldout.user_ids), len(item_ids)
    foldin = sp.csr_matrix((data, (rows, cols)), shape=(n_users, n_items), dtype=np.float32)
    target = sp.csr_matrix(
        (np.ones(len(t_rows), np.float32), (t_rows, t_cols)), shape=(n_users, n_items + len(unknown))
    )
    target.sum_duplicates()
    target.data[:] = 1.0
    return Mapped(foldin, target, n_items)


def ranked_lists(scores_of: Any, mapped: Mapped, *, batch: int = 1000) -> np.ndarray:
    """Top-K (n_users, K) of each user, fold-in items excluded as in serving."""
    out = []
    for start in range(0, mapped.foldin.shape[0], batch):
        foldin = mapped.foldin[start : start + batch]
        scores = np.array(scores_of(foldin), dtype=np.float32)
        out.append(top_k(scores, K, exclude=foldin.toarray() > 0))
    return np.vstack(out) if out else np.zeros((0, K), np.int64)


def metrics_of(ranked: np.ndarray, mapped: Mapped) -> dict[str, float]:
    """Metrics over users with a fold-in (a user with none gets popularity in serving, and so
    here too: every scorer ranks an empty history by its own fallback)."""
    return summarize(ranked, mapped.target, mapped.n_items)


def recommender_lists(
    recommender: Recommender,
    mapped: Mapped,
    *,
    weights: dict[str, float] | None = None,
    filters: Filters | None = None,
    k: int = K,
    rerank: Rerank | None = None,
) -> np.ndarray:
    """Top-k (n_users, k) of each user through ``Recommender.recommend`` (-1: fewer), the
    fold-in excluded: the serving path, one request per user."""
    out = np.full((mapped.foldin.shape[0], k), -1, dtype=np.int64)
    for u in range(mapped.foldin.shape[0]):
        start, end = mapped.foldin.indptr[u], mapped.foldin.indptr[u + 1]
        items, values = mapped.foldin.indices[start:end].tolist(), mapped.foldin.data[start:end].tolist()
        history = dict(zip(items, values, strict=True))
        found = recommender.recommend(
            history, k=k, exclude=items, filters=filters, weights=weights, rerank=rerank
        ).item_idx
        out[u, : len(found)] = found
    return out


def served_metrics(
    version_dir: Path, heldout: Heldout, *, mode: str | None = None
) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """Test metrics of an exported artifact, loaded by the serving loader and scored by the
    serving code: each component alone, the blend as served, and popularity. ``mode``
    overrides the manifest's retrieval mode. Exhaustive scoring runs in batches through the
    serving scorer (the same scores as one request per user); two-stage scoring one request
    per user. Also returns the blend's ranked lists (for per-target checks)."""
    loaded = artifact.load(version_dir)
    recommender = Recommender(loaded, mode=mode)
    mapped = map_heldout(heldout, [bytes(i).decode() for i in loaded.arrays["item_ids"]])
    scorer = recommender.scorer
    popularity = np.asarray(loaded.arrays["popularity"])
    out = {
        "popular": metrics_of(ranked_lists(lambda h: np.tile(popularity, (h.shape[0], 1)), mapped), mapped)
    }
    for name in [*scorer.components, "blend"]:
        weights = None if name == "blend" else {name: 1.0}
        if recommender.mode == "exhaustive":
            ranked = ranked_lists(lambda h, w=weights: scorer.score(h, weights=w), mapped)
        else:
            ranked = recommender_lists(recommender, mapped, weights=weights)
        out[name] = metrics_of(ranked, mapped)
    return out, ranked


def reference_metrics(result: TrainResult, heldout: Heldout, log: Log) -> dict[str, Any]:
    """Every reference, chosen on the served model's validation users and refitted on its rows."""
    mapped = map_heldout(heldout, result.data.item_ids)
    out: dict[str, Any] = {}
    for name, build in REFERENCES.items():
        started = time.perf_counter()
        scores_of, chosen = build(result.data, log)
        out[name] = metrics_of(ranked_lists(scores_of, mapped), mapped)
        out[name]["_chosen"] = chosen
        out[name]["_seconds"] = time.perf_counter() - started
        log(f"reference {name}: test ndcg@100 {out[name]['ndcg@100']:.4f} ({out[name]['_seconds']:.0f}s)")
    return out


def rare_item_hit_rate(
    ranked: np.ndarray, item_ids: list[str], counts: dict[str, int], heldout: Heldout
) -> dict[str, float]:
    """HR@100 of test targets whose item has 1-4 interactions in the training file."""
    hits, total = 0, 0
    for u, targets in enumerate(heldout.targets):
        shown = {item_ids[i] for i in ranked[u] if 0 <= i < len(item_ids)}
        for item in targets:
            if 1 <= counts.get(item, 0) <= 4:
                total += 1
                hits += item in shown
    return {"hr@100": hits / max(total, 1), "targets": float(total)}


def training_counts(dataset: Dataset, config: TrainConfig) -> dict[str, int]:
    """Users per item in the training file after the row rules (no minimum counts)."""
    rules = dataclasses.replace(config.cleaning, min_user_interactions=1, min_item_interactions=1)
    pairs = clean(dataset, rules).interactions
    return pairs.groupby("item_id").size().to_dict()


def evaluate_dataset(
    dataset: Dataset,
    config: TrainConfig,
    *,
    work_dir: Path,
    log: Log,
    cold_start: bool = False,
    rare_items: bool = False,
    references: bool = True,
    interactions_only: bool = True,
) -> dict[str, Any]:
    """Hold test users out, train (with and, unless ``interactions_only`` is false, without
    item attributes), score the artifacts, the references and the optional experiments."""
    train, heldout = hold_out(dataset, config)
    log(f"test users held out before cleaning: {len(heldout.user_ids):,}")
    out: dict[str, Any] = {"test_users": len(heldout.user_ids)}
    variants = [("attributes", train)]
    if interactions_only:
        variants.append(("interactions only", _without_attributes(train)))
    for variant, data in variants:
        started = time.perf_counter()
        result = run(data, config, out_dir=work_dir / variant.replace(" ", "-"), log=log)
        seconds = time.perf_counter() - started
        assert result.version_dir is not None
        metrics, ranked = served_metrics(result.version_dir, heldout)
        out[variant] = _summary(result, metrics, seconds)
        log(f"{variant}: served blend test ndcg@100 {metrics['blend']['ndcg@100']:.4f}")
        if variant == "attributes":
            from models import retrieval_eval  # it builds on this module

            out["retrieval"] = retrieval_eval.compare(result.version_dir, heldout, log=log)
            from models import diversity_eval  # it builds on this module

            out["diversity"] = diversity_eval.curve(result.version_dir, heldout, log=log)
            if references:
                out["references"] = reference_metrics(result, heldout, log)
            if rare_items:
                out["rare_items"] = _rare_items(train, heldout, result, ranked, config, work_dir, log)
            if cold_start:
                out["cold_start"] = cold_start_experiment(train, heldout, config, result, log=log)
    return out


def _without_attributes(dataset: Dataset) -> Dataset:
    ids = dataset.items["item_id"] if len(dataset.items) else pd.Series(dtype="object")
    items = pd.DataFrame({"item_id": ids, "title": pd.NA, "category": pd.NA, "brand": pd.NA, "price": np.nan})
    items["attributes"] = [[] for _ in range(len(items))]
    return Dataset(dataset.interactions, items, dict(dataset.dropped))


def _summary(result: TrainResult, metrics: dict[str, Any], seconds: float) -> dict[str, Any]:
    components = result.report["components"]
    return {
        "metrics": metrics,
        "validation": result.metrics,
        "counts": result.report["counts"],
        "dropped": result.report["cleaning"]["dropped"],
        "weights": result.weights,
        "blend_grid": result.report["blend"]["grid"],
        "item_item": {k: v for k, v in components["ease"].items() if k not in ("grid", "chosen")},
        "vae": {k: v for k, v in components["vae"].items() if k != "chosen"},
        # What models/plots.training_curves draws: every component's curve or search.
        "training_report": {"components": components, "blend": result.report["blend"]},
        "stages": result.report["stages"],
        "train_seconds": seconds,
        "artifact": str(result.version_dir),
    }


def _rare_items(
    train: Dataset,
    heldout: Heldout,
    result: TrainResult,
    ranked: np.ndarray,
    config: TrainConfig,
    work_dir: Path,
    log: Log,
) -> dict[str, Any]:
    """HR@100 on rare-item targets: this model vs the same pipeline with 5-core cleaning."""
    counts = training_counts(train, config)
    after = rare_item_hit_rate(ranked, result.data.item_ids, counts, heldout)
    five_core = dataclasses.replace(
        config,
        cleaning=dataclasses.replace(config.cleaning, min_user_interactions=5, min_item_interactions=5),
    )
    before_result = run(train, five_core, out_dir=work_dir / "five-core", log=log)
    assert before_result.version_dir is not None
    metrics, before_ranked = served_metrics(before_result.version_dir, heldout)
    item_ids = [i["item_id"] for i in artifact.load(before_result.version_dir).items]
    before = rare_item_hit_rate(before_ranked, item_ids, counts, heldout)
    log(f"rare-item targets: hr@100 {before['hr@100']:.4f} with 5-core cleaning, {after['hr@100']:.4f} now")
    return {
        "before": before
        | {"ndcg@100": metrics["blend"]["ndcg@100"], "counts": before_result.report["counts"]},
        "after": after,
    }


def cold_start_experiment(
    train: Dataset, heldout: Heldout, config: TrainConfig, warm_result: TrainResult, *, log: Log
) -> dict[str, dict[str, float]]:
    """Hold 10% of the items with interactions out of training entirely, then rank only
    those items for the test users who bought some (history: their other items) by: the
    content->CF map (the VAE's decoder rows of those items come from it), the content profile,
    popularity (counted on every row, test users' included: an oracle no live shop has) and
    random order."""
    rng = np.random.default_rng(config.split.seed)
    data = warm_result.data
    warm_ids = [i for i, n in zip(data.item_ids, np.diff(data.full.tocsc().indptr), strict=True) if n > 0]
    cold = frozenset(rng.choice(warm_ids, size=max(1, len(warm_ids) // 10), replace=False).tolist())
    log(f"cold start: {len(cold):,} items held out of training")
    result = run(train, config, log=log, cold_items=cold)
    item_ids = result.data.item_ids
    is_cold = np.isin(np.asarray(item_ids, dtype=object), list(cold))
    mapped = map_heldout(heldout, item_ids)
    histories = sp.csr_matrix(mapped.foldin + mapped.target[:, : len(item_ids)])
    foldin = sp.csr_matrix(histories.multiply((~is_cold)[None, :].astype(np.float32)))
    target = sp.csr_matrix(histories.multiply(is_cold[None, :].astype(np.float32)))
    rows = np.flatnonzero((np.diff(target.indptr) > 0) & (np.diff(foldin.indptr) > 0))
    foldin, target = foldin[rows], target[rows]
    target.data[:] = 1.0
    exclude = np.broadcast_to(~is_cold, (len(rows), len(item_ids)))
    counts = training_counts(train, config)
    for targets, foldin_items in zip(heldout.targets, heldout.foldin, strict=True):
        for item in [*targets, *(i for i, _ in foldin_items)]:
            counts[item] = counts.get(item, 0) + 1
    oracle = np.array([counts.get(i, 0) for i in item_ids], dtype=np.float32)
    scorer = result.scorer
    candidates = {
        "content->cf map": scorer.component_scores(foldin, only=("vae",))["vae"],
        "content profile": scorer.component_scores(foldin, only=("content",))["content"],
        "popularity (oracle)": np.tile(oracle, (len(rows), 1)),
        "random": rng.random((len(rows), len(item_ids)), dtype=np.float32),
    }
    out = {}
    for name, scores in candidates.items():
        ranked = top_k(np.array(scores, dtype=np.float32), 20, exclude=exclude)
        out[name] = {
            "recall@10": float(recall_at_k(ranked, target, 10).mean()),
            "ndcg@10": float(ndcg_at_k(ranked, target, 10).mean()),
            "recall@20": float(recall_at_k(ranked, target, 20).mean()),
        }
        log(f"cold start {name}: {out[name]}")
    out["_users"] = {"n": float(len(rows)), "cold_items": float(len(cold))}
    return out
