"""Reference recommenders for the evaluation report, held to the served model's protocol:
trained on the same rows (the training file after cleaning), settings chosen on the same
validation users, then refitted on every user with those settings.

- popularity; item-kNN (cosine, neighbours tuned); plain EASE (lambda tuned);
- implicit ALS (the ``implicit`` package, one thread; factors, regularisation and confidence
  tuned);
- a faithful Mult-VAE (Liang et al. 2018: [I-600-200-600-I], dropout 0.5, beta annealed to
  0.2, batch 500, Adam 1e-3, binary input, up to 200 epochs, early stopping on validation
  NDCG@100 with patience 20).

Each reference is a function (TrainData) -> (name, scores_of), ``scores_of(histories)``
giving (B, n_items) scores; item-item references score through the serving ItemItem
component, the Mult-VAE through the serving VAE component.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from app.scoring.components.ease import ItemItem
from app.scoring.components.vae import VAE
from models import ease as ease_model
from models.components.base import Log, TrainData, warm
from models.components.vae import validation_ndcg
from models.config import VAEConfig
from models.evaluation import rank
from models.metrics import ndcg_at_k
from models.vae import train_vae

ScoresOf = Callable[[sp.csr_matrix], np.ndarray]

PAPER_VAE = VAEConfig(epochs=200, patience=20)  # every other field is the paper's default


def validation(scores_of: ScoresOf, data: TrainData) -> float:
    rows = np.flatnonzero(np.diff(data.val_target.indptr) > 0)
    foldin, target = data.val_foldin[rows], data.val_target[rows]
    return float(ndcg_at_k(rank(scores_of(foldin), foldin), target, 100).mean())


def _choose(
    name: str, grid: list[Any], fit: Callable[[sp.csr_matrix, Any], ScoresOf], data: TrainData, log: Log
) -> tuple[ScoresOf, dict[str, Any]]:
    """Fit each setting on the selection users, keep the best on validation, refit on all."""
    tried = []
    for setting in grid:
        ndcg = validation(fit(data.train, setting), data)
        tried.append((ndcg, setting))
        log(f"reference {name} {setting}: validation ndcg@100 {ndcg:.4f}")
    best_ndcg, best = max(tried, key=lambda row: row[0])
    return fit(data.full, best), {"setting": best, "validation_ndcg@100": best_ndcg}


def _item_item(matrix: sp.csr_matrix, n_items: int) -> ScoresOf:
    csr = matrix.tocsr()
    arrays = {
        "popularity": np.zeros(n_items, np.float32),
        "ease_indptr": csr.indptr.astype(np.int64),
        "ease_indices": csr.indices.astype(np.int32),
        "ease_data": csr.data.astype(np.float32),
    }
    return ItemItem(arrays).score


def popularity(data: TrainData, log: Log) -> tuple[ScoresOf, dict[str, Any]]:
    counts = ease_model.popularity(data.full)
    return (lambda h: np.tile(counts, (h.shape[0], 1))), {}


def item_knn(data: TrainData, log: Log) -> tuple[ScoresOf, dict[str, Any]]:
    def fit(train: sp.csr_matrix, k: int) -> ScoresOf:
        return _item_item(ease_model.item_knn(train, neighbors=k), data.n_items)

    return _choose("item-knn", [10, 20, 50, 100, 200], fit, data, log)


def plain_ease(data: TrainData, log: Log) -> tuple[ScoresOf, dict[str, Any]]:
    def fit(train: sp.csr_matrix, lam: float) -> ScoresOf:
        b = ease_model.fit_ease(ease_model.gram(train), lam, warm=warm(train))
        return _item_item(ease_model.sparsify(b, 500), data.n_items)

    return _choose("ease", [10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0], fit, data, log)


def als(data: TrainData, log: Log) -> tuple[ScoresOf, dict[str, Any]]:
    from threadpoolctl import threadpool_limits

    def fit(train: sp.csr_matrix, setting: tuple[int, float, float]) -> ScoresOf:
        from implicit.cpu.als import AlternatingLeastSquares

        factors, reg, alpha = setting
        binary = (train > 0).astype(np.float32).tocsr()
        # implicit's own advice (it warns otherwise, and the tests make warnings errors): one
        # BLAS thread while it runs.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=factors, regularization=reg, alpha=alpha, iterations=15, random_state=7, num_threads=1
            )
            model.fit(binary, show_progress=False)
        items = np.asarray(model.item_factors)

        def scores_of(histories: sp.csr_matrix) -> np.ndarray:
            binary = (histories > 0).astype(np.float32).tocsr()
            with threadpool_limits(1, "blas"):
                users = model.recalculate_user(np.arange(binary.shape[0]), binary)
            return np.asarray(users @ items.T, dtype=np.float32)

        return scores_of

    grid = [(f, reg, a) for f in (64, 128, 256, 512) for reg in (1.0, 10.0, 100.0) for a in (1.0, 10.0)]
    return _choose("als", grid, fit, data, log)


def mult_vae(data: TrainData, log: Log) -> tuple[ScoresOf, dict[str, Any]]:
    """The paper's Mult-VAE on binary rows; the best epoch, then refitted that long."""
    started = time.perf_counter()
    binary_train = (data.train > 0).astype(np.float32)
    model, history, best = train_vae(
        binary_train,
        PAPER_VAE,
        epochs=PAPER_VAE.epochs or 200,
        patience=PAPER_VAE.patience,
        validate=lambda m: validation_ndcg(m, data.val_foldin, data.val_target),
        log=log,
    )
    refit_config = dataclasses.replace(PAPER_VAE, epochs=best)
    model, _, _ = train_vae(
        (data.full > 0).astype(np.float32), refit_config, epochs=best, anneal_epochs=PAPER_VAE.epochs, log=log
    )
    arrays = {**model.export_arrays(), "popularity": np.zeros(data.n_items, np.float32)}
    arrays["item_norm"] = np.linalg.norm(arrays["item_emb"], axis=1).astype(np.float32)
    arrays["content_to_cf"] = np.zeros((1, 1), np.float32)
    arrays["user_emb"] = np.zeros((0, 1), np.float32)
    component = VAE(arrays)
    best_ndcg = max(row["val_ndcg@100"] for row in history)
    report = {"best_epoch": best, "validation_ndcg@100": best_ndcg, "seconds": time.perf_counter() - started}
    return (lambda h: component.score((h > 0).astype(np.float32))), report


REFERENCES: dict[str, Callable[[TrainData, Log], tuple[ScoresOf, dict[str, Any]]]] = {
    "popular": popularity,
    "item-knn": item_knn,
    "ease (plain)": plain_ease,
    "als": als,
    "mult-vae (paper)": mult_vae,
}
