"""Offline evaluation through the serving scorer: the numbers we publish are the ones we serve."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from app.scoring.scorer import Scorer, top_k
from models.metrics import summarize

BATCH = 1000
K = 100


def rank(scores: np.ndarray, foldin: sp.csr_matrix, k: int = K) -> np.ndarray:
    """Top-k (B, k) of a score block, fold-in items excluded as in serving."""
    return top_k(scores, k, exclude=foldin.toarray() > 0)


def evaluate_scorer(
    scorer: Scorer,
    foldin: sp.csr_matrix,
    target: sp.csr_matrix,
    weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Metrics of the scorer (blend ``weights``, default the artifact's) on held-out users."""
    rows = _evaluable(target)
    ranked = [rank(scorer.score(foldin[batch], weights=weights), foldin[batch]) for batch in _batches(rows)]
    return summarize(np.vstack(ranked), target[rows], scorer.n_items)


def evaluate_static(scores: np.ndarray, foldin: sp.csr_matrix, target: sp.csr_matrix) -> dict[str, float]:
    """Metrics of one score vector shared by every user (popularity), (n_items,): its best
    items once (ties by index), then each user's first K outside the fold-in. No users x
    items array: at 1M items a batch of 1,000 users took the training past 23 GB."""
    rows = _evaluable(target)
    foldin = foldin[rows]
    longest = int(np.diff(foldin.indptr).max(initial=0))
    order = np.argsort(-scores, kind="stable")[: K + longest]
    ranked = np.full((len(rows), K), -1, dtype=np.int64)
    for u in range(len(rows)):
        kept = order[~np.isin(order, foldin.indices[foldin.indptr[u] : foldin.indptr[u + 1]])][:K]
        ranked[u, : len(kept)] = kept
    return summarize(ranked, target[rows], scores.shape[0])


def evaluate_item_item(
    similarity: sp.csr_matrix, foldin: sp.csr_matrix, target: sp.csr_matrix
) -> dict[str, float]:
    """Metrics of history @ item-item matrix (item-kNN)."""
    rows = _evaluable(target)
    ranked = [
        rank(np.asarray((foldin[b] @ similarity).todense(), dtype=np.float32), foldin[b])
        for b in _batches(rows)
    ]
    return summarize(np.vstack(ranked), target[rows], similarity.shape[0])


def _evaluable(target: sp.csr_matrix) -> np.ndarray:
    """Held-out users with at least one target."""
    return np.flatnonzero(np.diff(target.indptr) > 0)


def _batches(rows: np.ndarray) -> list[np.ndarray]:
    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]
