"""Ranking metrics of Liang et al. 2018 (binary relevance), on ranked index lists.

``ranked``: (B, K) int item indices, best first (-1 = padding). ``targets``: a CSR of shape
(B, n_items) whose nonzeros are the held-out items.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _hits(ranked: np.ndarray, targets: sp.csr_matrix, k: int) -> np.ndarray:
    top = ranked[:, :k]
    rows = np.repeat(np.arange(top.shape[0]), top.shape[1]).reshape(top.shape)
    safe = np.where(top < 0, 0, top)
    hit = np.asarray(targets[rows.ravel(), safe.ravel()]).reshape(top.shape) > 0
    return hit & (top >= 0)


def recall_at_k(ranked: np.ndarray, targets: sp.csr_matrix, k: int) -> np.ndarray:
    """Hits in the top k divided by min(k, number of targets), per user: (B,) float."""
    n_targets = np.diff(targets.indptr)
    hits = _hits(ranked, targets, k).sum(axis=1)
    return hits / np.maximum(np.minimum(k, n_targets), 1)


def ndcg_at_k(ranked: np.ndarray, targets: sp.csr_matrix, k: int) -> np.ndarray:
    """DCG@k / ideal DCG@k with log2(rank + 1) discounts, per user: (B,) float."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits = _hits(ranked, targets, k)
    dcg = (hits * discounts[: hits.shape[1]]).sum(axis=1)
    n_targets = np.diff(targets.indptr)
    ideal = np.array([discounts[: min(n, k)].sum() for n in n_targets])
    return dcg / np.maximum(ideal, 1e-12)


def coverage_at_k(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalog that appears in at least one user's top k."""
    top = ranked[:, :k]
    return float(np.unique(top[top >= 0]).size / n_items)


def summarize(ranked: np.ndarray, targets: sp.csr_matrix, n_items: int) -> dict[str, float]:
    return {
        "recall@20": float(recall_at_k(ranked, targets, 20).mean()),
        "recall@50": float(recall_at_k(ranked, targets, 50).mean()),
        "ndcg@10": float(ndcg_at_k(ranked, targets, 10).mean()),
        "ndcg@100": float(ndcg_at_k(ranked, targets, 100).mean()),
        "coverage@10": coverage_at_k(ranked, n_items, 10),
    }
