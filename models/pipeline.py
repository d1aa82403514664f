"""The offline pipeline: clean -> index -> validation split -> item features -> per component
(models/components): select settings on validation -> blend weights on validation ->
refit every component on all users with those settings -> artifact.

The artifact holds the refitted models: they learnt from every shopper of the training file.
Validation numbers (and the quality gate of retraining) come from the selection models,
which have not seen the validation users.
"""

from __future__ import annotations

import gc
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
from app.scoring.features import FeatureSpace
from app.scoring.retrieval import Pools
from app.scoring.scorer import Scorer
from models import blend
from models import ease as ease_model
from models.components import TRAINERS
from models.components.base import Fitted, TrainData, warm
from models.components.vae import sampled
from models.config import ConfigError, TrainConfig
from models.data import Dataset, clean
from models.distributed import placement
from models.evaluation import evaluate_static
from models.split import index, validation_split

Log = Callable[[str], None]
SPILL_BYTES = 32 << 20  # selection arrays this large wait for the caller on disk, mapped


@dataclass
class TrainResult:
    data: TrainData
    catalog: list[dict[str, Any]]
    arrays: dict[str, np.ndarray]  # the refitted, exported arrays
    scorer: Scorer  # the refitted models with the chosen blend weights (as served)
    selection: Scorer  # the selection models (not trained on validation users), same weights
    weights: dict[str, float]
    metrics: dict[str, dict[str, float]]  # validation metrics of the selection models
    report: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # what components left (the Keras VAE)
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
    """Train every component on ``dataset``; when ``out_dir`` is given, export (and publish,
    unless ``publish`` is false: the caller decides, e.g. after a quality gate).

    ``cold_items`` are kept out of every training row (cold-start experiments); ``source``
    records where the base data came from (so retraining can read it again); ``consumed``
    the feedback stream cursor whose events are included."""
    if not placement().is_chief:  # also creates the strategy before TensorFlow's first op
        raise ConfigError("a worker of a multi-worker training runs pipeline.follow; the chief runs this")
    started = time.perf_counter()
    stages: dict[str, dict[str, float]] = {}
    with stage(stages, "clean and prepare", log):
        cleaned = clean(dataset, config.cleaning)
        frame = cleaned.interactions
        log(f"cleaned: {len(frame):,} user-item pairs; removed per rule {cleaned.dropped}")
        data, catalog, space = prepare(cleaned, config, cold_items, log)
    # follow() (the other workers of a multi-worker run) repeats the Keras trainings of these
    # loops in this order: keep the two in step.
    components = [TRAINERS[name] for name in config.blend.components]
    shared: dict[str, Any] = {}
    selected: dict[str, Fitted] = {}
    for trainer in components:
        with stage(stages, f"select {trainer.name}", log):
            selected[trainer.name] = trainer.select(data, config, shared, log)
    selection_arrays = _merge(data, data.train, (f.arrays for f in selected.values()))
    with stage(stages, "blend", log):
        rows = np.flatnonzero(np.diff(data.val_target.indptr) > 0)
        mode = config.retrieval.resolved(data.n_items)
        parts = blend.parts_for(
            Scorer(selection_arrays, {}),
            data.val_foldin[rows],
            mode=mode,
            popular_order=selection_arrays["popular_order"],
            pools=_pools(config),
        )
        target = data.val_target[rows]
        weights, blend_grid = blend.search_blend(
            parts, target, grid=config.blend.grid, rounds=config.blend.rounds, log=log
        )
        metrics = validation_metrics(parts, target, Scorer(selection_arrays, weights), data)
        del parts  # the validation users' candidates: not needed by the refit
    # The selection arrays stay for the caller (the retraining gate scores them) but are not
    # read by the refits: on disk, memory-mapped, they leave the refits' memory to the refits.
    if out_dir is not None:  # the spill goes next to the artifact (a temporary folder may be in memory)
        out_dir.mkdir(parents=True, exist_ok=True)
    selection_arrays = spill(selection_arrays, out_dir, min_bytes=SPILL_BYTES)
    for fitted in selected.values():
        fitted.arrays = {}
    if "content_arrays" in shared:
        shared["content_arrays"] = {k: selection_arrays[k] for k in shared["content_arrays"]}
        shared["content_emb"] = shared["content_arrays"]["content_emb"]
    selection = Scorer(selection_arrays, weights)
    for name, row in metrics.items():
        log(f"validation {name:8s} " + " ".join(f"{k} {v:.4f}" for k, v in row.items()))
    refitted: list[dict[str, np.ndarray]] = []
    for trainer in components:
        with stage(stages, f"refit {trainer.name}", log):
            chosen = selected[trainer.name].chosen
            refitted.append(trainer.refit(data, config, chosen, shared, log))
    arrays = _merge(data, data.full, refitted)
    scorer = Scorer(arrays, weights)
    _add_users(arrays, scorer, data)
    report = {
        "cleaning": {"dropped": cleaned.dropped, "rules": config.cleaning.__dict__},
        "counts": _counts(data),
        "components": {name: f.report | {"chosen": f.chosen} for name, f in selected.items()},
        "blend": {"weights": weights, "grid": blend_grid},
        "stages": stages,
        "train_seconds": time.perf_counter() - started,
    }
    result = TrainResult(data, catalog, arrays, scorer, selection, weights, metrics, report, shared)
    if out_dir is not None:
        manifest = _manifest(frame, config, report, space, metrics, source, consumed)
        version = datetime.now(UTC).strftime("v%Y%m%dT%H%M%S") + "-" + manifest["data_fingerprint"][:8]
        out_dir.mkdir(parents=True, exist_ok=True)
        result.version_dir = artifact.write(
            out_dir,
            version=version,
            manifest=manifest,
            items=catalog,
            users=data.user_ids,
            arrays=arrays,
            log=log,
        )
        if publish:
            artifact.publish(out_dir, version)
            log(f"artifact {result.version_dir} published as {out_dir / artifact.CURRENT}")
    return result


def follow(
    dataset: Dataset, config: TrainConfig, *, cold_items: frozenset[str] = frozenset(), log: Log = print
) -> None:
    """A worker's part of :func:`run` when several machines train (``TF_CONFIG``,
    models/distributed.py): the same cleaning and split, then the Keras trainings in the order
    ``run`` does them (the item autoencoder, the Mult-VAE's selection, its refit) as a share of
    each batch. The chief does everything else and writes the artifact; nothing is written here."""
    place = placement()
    cleaned = clean(dataset, config.cleaning)
    data, _, _ = prepare(cleaned, config, cold_items, log)
    keras_trained = [
        TRAINERS[name]
        for name in config.blend.components
        if name == "content" or (name == "vae" and not sampled(config.vae, data.n_items))
    ]
    log(f"worker {place.rank} of {place.workers}: trains {[t.name for t in keras_trained]} with the chief")
    shared: dict[str, Any] = {}
    chosen = {t.name: t.select(data, config, shared, log).chosen for t in keras_trained}
    for trainer in keras_trained:
        trainer.refit(data, config, chosen[trainer.name], shared, log)


def prepare(
    cleaned: Dataset, config: TrainConfig, cold_items: frozenset[str], log: Log
) -> tuple[TrainData, list[dict[str, Any]], FeatureSpace]:
    """Index users and items, split validation users off, encode item features."""
    catalog_ids = [i for i in cleaned.items["item_id"].tolist() if isinstance(i, str)]
    indexed = index(cleaned.interactions, catalog_ids)
    full = indexed.full
    if cold_items:
        keep = ~np.isin(np.asarray(indexed.item_ids, dtype=object), list(cold_items))
        full = sp.csr_matrix(full @ sp.diags(keep.astype(np.float32)))
        full.eliminate_zeros()
    train_users, val_users, foldin, target = validation_split(full, config.split)
    catalog = _catalog(indexed.item_ids, cleaned.items)
    space = FeatureSpace.fit(catalog, title_buckets=config.item_ae.title_buckets)
    features = space.encode_sparse(catalog)
    data = TrainData(
        item_ids=indexed.item_ids,
        user_ids=indexed.user_ids,
        full=full,
        train_users=train_users,
        val_users=val_users,
        val_foldin=foldin,
        val_target=target,
        features=features,
        max_weight=max(config.cleaning.event_weights.values()),
    )
    log(
        f"{len(data.user_ids):,} users ({len(train_users):,} choose settings with "
        f"{len(val_users):,} validation users; all of them train the served model), "
        f"{data.n_items:,} items ({int(warm(full).sum()):,} with interactions), "
        f"{features.shape[1]:,} item feature columns"
    )
    return data, catalog, space


class stage:
    """Context manager: wall time and peak RSS growth of one stage, logged and recorded."""

    def __init__(self, stages: dict[str, dict[str, float]], name: str, log: Log) -> None:
        self.stages, self.name, self.log = stages, name, log

    def __enter__(self) -> None:
        self.started = time.perf_counter()
        self.log(f"{self.name}: started")

    def __exit__(self, *exc: object) -> None:
        # A stage's garbage goes before the next stage starts: a Keras or tf.Module model is a
        # reference cycle (its traced functions hold it), freed by the collector, not by
        # reference counts, and at 1M items it holds gigabytes.
        gc.collect()
        seconds = time.perf_counter() - self.started
        self.stages[self.name] = {"seconds": seconds, "peak_rss_mb": _peak_rss_mb()}
        self.log(f"{self.name}: {seconds:.1f}s, peak RSS so far {_peak_rss_mb():,.0f} MB")


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def spill(arrays: dict[str, np.ndarray], near: Path | None, *, min_bytes: int) -> dict[str, np.ndarray]:
    """``arrays`` with each one of at least ``min_bytes`` written to disk (next to ``near``, or
    in the temporary directory) and memory-mapped back read-only: its pages are read when
    touched and the kernel can drop them again. The files are unlinked at once (a mapping
    outlives its file's name), so nothing is left on disk when the arrays are freed."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=".selection-", dir=near if near and near.is_dir() else None))
    out = dict(arrays)
    try:
        for name, array in arrays.items():
            if array.nbytes >= min_bytes and array.nbytes > 0:
                file = folder / f"{name}.npy"
                np.save(file, array, allow_pickle=False)
                out[name] = np.load(file, mmap_mode="r", allow_pickle=False)
                file.unlink()
    finally:
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    return out


def _merge(data: TrainData, trained_on: sp.csr_matrix, parts: Any) -> dict[str, np.ndarray]:
    """One artifact's arrays: the components' and the shared ones."""
    popularity = ease_model.popularity(trained_on)
    order = np.argsort(-popularity, kind="stable").astype(np.int64)
    arrays: dict[str, np.ndarray] = {"popularity": popularity, "popular_order": order}
    for part in parts:
        arrays.update(part)
    return arrays


def _add_users(arrays: dict[str, np.ndarray], scorer: Scorer, data: TrainData) -> None:
    """Known users' histories, and their precomputed VAE user vectors."""
    histories = data.full
    arrays.update(
        user_indptr=histories.indptr.astype(np.int64),
        user_items=histories.indices.astype(np.int32),
        user_weights=histories.data.astype(np.float32),
    )
    vae = scorer.components.get("vae")
    if vae is not None:
        parts = [vae.prepare(histories[i : i + 2000]) for i in range(0, histories.shape[0], 2000)]
        arrays["user_emb"] = np.vstack([p for p in parts if p is not None]).astype(np.float32)


def validation_metrics(
    parts: blend.DenseParts | blend.CandidateParts, target: sp.csr_matrix, scorer: Scorer, data: TrainData
) -> dict[str, dict[str, float]]:
    """Each component alone, the blend and popularity on the validation users, scored as the
    served artifact will score (over every item, or over each user's candidates)."""
    rows = np.flatnonzero(np.diff(data.val_target.indptr) > 0)
    out = {"popular": evaluate_static(scorer.arrays["popularity"], data.val_foldin[rows], target)}
    for name in scorer.components:
        out[name] = blend.metrics(parts, target, {name: 1.0}, scorer.n_items)
    out["blend"] = blend.metrics(parts, target, scorer.weights, scorer.n_items)
    return out


def _pools(config: TrainConfig) -> Pools:
    r = config.retrieval
    return Pools(r.per_component, r.popular, r.exact_limit, r.max_oversample, r.per_k, r.min_per_component)


def _counts(data: TrainData) -> dict[str, int]:
    return {
        "users": len(data.user_ids),
        "items": data.n_items,
        "warm_items": int(warm(data.full).sum()),
        "interactions": int(data.full.nnz),
        "train_users": len(data.train_users),
        "validation_users": len(data.val_users),
    }


def _manifest(
    frame: pd.DataFrame,
    config: TrainConfig,
    report: dict[str, Any],
    space: FeatureSpace,
    metrics: dict[str, dict[str, float]],
    source: dict[str, Any] | None,
    consumed: dict[str, Any] | None,
) -> dict[str, Any]:
    training = {k: v for k, v in report.items() if k not in ("counts", "blend")}
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_fingerprint": _fingerprint(frame),
        "source": source or {},
        "code_revision": _git_revision(),
        "counts": report["counts"],
        "components": list(config.blend.components),
        "blend_weights": report["blend"]["weights"],
        "events": {
            "weights": config.cleaning.event_weights,
            "rating_threshold": config.cleaning.rating_threshold,
        },
        "hyperparameters": config.to_dict(),
        "metrics": {"validation": metrics},
        "training": training,
        "feature_space": space.to_dict(),
        "retrieval": _retrieval(config, report["counts"]["items"]),
        "consumed": consumed or {},
    }


def _retrieval(config: TrainConfig, n_items: int) -> dict[str, Any]:
    return {
        "mode": config.retrieval.resolved(n_items),
        "pools": _pools(config).__dict__,
        "ann": config.retrieval.ann(n_items),
        "lowrank": config.retrieval.lowrank(n_items),
    }


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
