"""The offline pipeline: clean -> split -> item features -> item autoencoder -> Mult-VAE ->
EASE -> content->CF map -> blend weights on validation -> test metrics -> artifact."""

from __future__ import annotations

import hashlib
import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from app.scoring import artifact
from app.scoring.features import FeatureSpace, content_to_cf, encode_content
from app.scoring.scorer import Scorer
from models import ease as ease_model
from models.config import TrainConfig
from models.data import Dataset, clean
from models.evaluation import evaluate_scorer, evaluate_static, rank, search_blend
from models.item_ae import fit_content_to_cf, train_item_autoencoder
from models.metrics import ndcg_at_k
from models.split import Split, build
from models.vae import MultVAE, train_vae, vae_logits

Log = Callable[[str], None]


@dataclass
class TrainResult:
    split: Split
    catalog: list[dict[str, Any]]
    features: np.ndarray
    arrays: dict[str, np.ndarray]
    scorer: Scorer
    weights: dict[str, float]
    metrics: dict[str, dict[str, float]]
    report: dict[str, Any] = field(default_factory=dict)
    vae: MultVAE | None = None
    version_dir: Path | None = None


def make_log(prefix: str = "") -> Log:
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {prefix}{message}", flush=True)

    return log


def run(
    dataset: Dataset,
    config: TrainConfig,
    *,
    out_dir: Path | None = None,
    log: Log = print,
    cold_items: frozenset[str] = frozenset(),
    source: dict[str, Any] | None = None,
    consumed: dict[str, Any] | None = None,
    publish: bool = True,
) -> TrainResult:
    """Train every model on ``dataset``; when ``out_dir`` is given, export (and publish,
    unless ``publish`` is false: the caller decides, e.g. after a quality gate).

    ``source`` records where the base data came from (so retraining can read it again);
    ``consumed`` the feedback stream cursor whose events are included."""
    started = time.perf_counter()
    cleaned = clean(dataset, config.cleaning)
    frame = cleaned.interactions
    log(f"cleaned: {len(frame):,} user-item pairs; dropped per rule {cleaned.dropped}")
    catalog_ids = [i for i in cleaned.items["item_id"].tolist() if isinstance(i, str)]
    split = build(frame, catalog_ids, config.split, cold_items=cold_items)
    train = split.train
    log(
        f"split (seed {config.split.seed}): {len(split.train_users):,} train / "
        f"{len(split.val_users):,} validation / {len(split.test_users):,} test users, "
        f"{split.n_items:,} items ({int(split.warm.sum()):,} with training interactions)"
    )
    catalog = _catalog(split.item_ids, cleaned.items)
    space = FeatureSpace.fit(catalog, title_buckets=config.item_ae.title_buckets)
    features = space.encode(catalog)
    log(f"item features: {features.shape[1]:,} columns for {features.shape[0]:,} items")
    t0 = time.perf_counter()
    ae_arrays, ae_losses = train_item_autoencoder(features, config.item_ae, log=log)
    content = encode_content(features, ae_arrays)
    ae_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    # Targets scaled so the strongest event counts 1: the multinomial likelihood then has
    # the paper's scale on binary data, and beta keeps its meaning.
    max_weight = max(config.cleaning.event_weights.values())
    vae, vae_history, best_epoch = train_vae(
        train / max_weight, config.vae, validate=lambda m: _keras_ndcg(m, split), log=log
    )
    vae_seconds = time.perf_counter() - t0
    arrays: dict[str, np.ndarray] = {**vae.export_arrays(), **ae_arrays, "content_emb": content}
    # Encoder rows of items never seen as input hold their random initialisation: zero them.
    arrays["enc_w1"][~split.warm] = 0.0
    mapping = fit_content_to_cf(
        content[split.warm],
        arrays["item_emb"][split.warm],
        arrays["item_bias"][split.warm],
        l2=config.item_ae.mapping_l2,
    )
    arrays["content_to_cf"] = mapping
    cold_emb, cold_bias = content_to_cf(content[~split.warm], arrays)
    arrays["item_emb"][~split.warm] = cold_emb
    arrays["item_bias"][~split.warm] = cold_bias
    arrays["popularity"] = ease_model.popularity(train)

    t0 = time.perf_counter()
    attribute_part = features[:, :-2]  # multi-hot attributes and title words, not price
    ease_choice = _choose_ease(train, attribute_part, split, config, log)
    ease_matrix = ease_model.sparsify(ease_choice.pop("matrix"), config.ease.neighbors)
    ease_seconds = time.perf_counter() - t0
    arrays["ease_indptr"] = ease_matrix.indptr.astype(np.int64)
    arrays["ease_indices"] = ease_matrix.indices.astype(np.int32)
    arrays["ease_data"] = ease_matrix.data.astype(np.float32)

    scorer = Scorer(arrays, weights={})
    weights, blend_grid = search_blend(
        scorer,
        split.val_foldin,
        split.val_target,
        vae_shares=config.blend.vae_shares,
        content_weights=config.blend.content_weights,
    )
    log(f"blend weights chosen on validation: {weights}")
    scorer = Scorer(arrays, weights=weights)
    metrics = _test_metrics(scorer, split)
    for name, row in metrics.items():
        log(f"test {name:8s} " + " ".join(f"{k} {v:.4f}" for k, v in row.items()))

    user_emb = _user_vectors(scorer, split.histories)
    arrays.update(
        {
            "user_indptr": split.histories.indptr.astype(np.int64),
            "user_items": split.histories.indices.astype(np.int32),
            "user_weights": split.histories.data.astype(np.float32),
            "user_emb": user_emb,
            "test_foldin_indptr": split.test_foldin.indptr.astype(np.int64),
            "test_foldin_items": split.test_foldin.indices.astype(np.int32),
            "test_foldin_weights": split.test_foldin.data.astype(np.float32),
            "test_target_indptr": split.test_target.indptr.astype(np.int64),
            "test_target_items": split.test_target.indices.astype(np.int32),
        }
    )
    report = {
        "cleaning": {"dropped": cleaned.dropped, "rules": config.cleaning.__dict__},
        "counts": {
            "users": len(split.user_ids),
            "items": split.n_items,
            "warm_items": int(split.warm.sum()),
            "interactions": int(split.histories.nnz),
            "train_users": len(split.train_users),
            "validation_users": len(split.val_users),
            "test_users": len(split.test_users),
        },
        "vae": {"history": vae_history, "best_epoch": best_epoch, "seconds": vae_seconds},
        "item_autoencoder": {"losses": ae_losses, "seconds": ae_seconds},
        "ease": {**ease_choice, "seconds": ease_seconds, "nnz": int(ease_matrix.nnz)},
        "blend": {"weights": weights, "grid": blend_grid},
        "train_seconds": time.perf_counter() - started,
    }
    result = TrainResult(
        split=split,
        catalog=catalog,
        features=features,
        arrays=arrays,
        scorer=scorer,
        weights=weights,
        metrics=metrics,
        report=report,
        vae=vae,
    )
    if out_dir is not None:
        manifest: dict[str, Any] = {
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "data_fingerprint": _fingerprint(frame),
            "source": source or {},
            "code_revision": _git_revision(),
            "counts": report["counts"],
            "hyperparameters": config.to_dict(),
            "blend_weights": weights,
            "metrics": {"test": metrics, "validation": {"ndcg@100": _best_ndcg(blend_grid)}},
            "training": {k: report[k] for k in ("cleaning", "ease", "train_seconds")}
            | {"vae_best_epoch": best_epoch, "vae_seconds": vae_seconds},
            "feature_space": space.to_dict(),
            "consumed": consumed or {},
        }
        version = datetime.now(UTC).strftime("v%Y%m%dT%H%M%S") + "-" + manifest["data_fingerprint"][:8]
        out_dir.mkdir(parents=True, exist_ok=True)
        result.version_dir = artifact.write(
            out_dir,
            version=version,
            manifest=manifest,
            items=catalog,
            users=split.user_ids,
            arrays=arrays,
        )
        if publish:
            artifact.publish(out_dir, version)
            log(f"artifact {result.version_dir} published as {out_dir / artifact.CURRENT}")
    return result


def _best_ndcg(grid: list[dict[str, float]]) -> float:
    return max(row["ndcg@100"] for row in grid)


def _keras_ndcg(model: MultVAE, split: Split) -> float:
    """Validation NDCG@100 of the Keras model in its scoring mode (posterior mean)."""
    rows = np.flatnonzero(np.diff(split.val_target.indptr) > 0)
    scores = []
    for start in range(0, len(rows), 1000):
        batch = split.val_foldin[rows[start : start + 1000]]
        logits = vae_logits(model, batch)
        scores.append(ndcg_at_k(rank(logits, batch), split.val_target[rows[start : start + 1000]], 100))
    return float(np.concatenate(scores).mean()) if scores else 0.0


def _choose_ease(
    train: sp.csr_matrix, attributes: np.ndarray, split: Split, config: TrainConfig, log: Log
) -> dict[str, Any]:
    rows = np.flatnonzero(np.diff(split.val_target.indptr) > 0)
    foldin, target = split.val_foldin[rows], split.val_target[rows]
    best: dict[str, Any] = {"ndcg@100": -1.0}
    grid = []
    for alpha in config.ease.attribute_weights:
        g = ease_model.gram(train, attributes, alpha)
        for lam in config.ease.lambdas:
            b = ease_model.fit_ease(g, lam, warm=split.warm)
            scores = np.asarray(foldin @ b, dtype=np.float32)
            ndcg = float(ndcg_at_k(rank(scores, foldin), target, 100).mean())
            grid.append({"alpha": alpha, "lambda": lam, "ndcg@100": ndcg})
            log(f"ease alpha {alpha:g} lambda {lam:g}: validation ndcg@100 {ndcg:.4f}")
            if ndcg > best["ndcg@100"]:
                best = {"alpha": alpha, "lambda": lam, "ndcg@100": ndcg, "matrix": b}
    best["grid"] = grid
    return best


def _test_metrics(scorer: Scorer, split: Split) -> dict[str, dict[str, float]]:
    foldin, target = split.test_foldin, split.test_target
    return {
        "popular": evaluate_static(scorer.arrays["popularity"], foldin, target),
        "vae": evaluate_scorer(scorer, foldin, target, {"vae": 1.0}),
        "ease": evaluate_scorer(scorer, foldin, target, {"ease": 1.0}),
        "content": evaluate_scorer(scorer, foldin, target, {"content": 1.0}),
        "blend": evaluate_scorer(scorer, foldin, target),
    }


def _user_vectors(scorer: Scorer, histories: sp.csr_matrix) -> np.ndarray:
    parts = [scorer.user_vectors(histories[i : i + 2000]) for i in range(0, histories.shape[0], 2000)]
    return np.vstack(parts) if parts else np.zeros((0, scorer.arrays["item_emb"].shape[1]), np.float32)


def _catalog(item_ids: list[str], items: pd.DataFrame) -> list[dict[str, Any]]:
    """Catalog rows aligned with item indices; items missing from the catalog get ids only."""
    known = {}
    for row in items.to_dict("records"):
        if isinstance(row.get("item_id"), str):
            known[row["item_id"]] = row
    out = []
    for item_id in item_ids:
        row = known.get(item_id, {})
        out.append(
            {
                "item_id": item_id,
                "title": _clean_value(row.get("title")),
                "category": _clean_value(row.get("category")),
                "brand": _clean_value(row.get("brand")),
                "price": _clean_value(row.get("price")),
                "attributes": list(row.get("attributes") or []),
            }
        )
    return out


def _clean_value(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fingerprint(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    hashed = pd.util.hash_pandas_object(frame[["user_id", "item_id", "weight"]], index=False)
    digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()
