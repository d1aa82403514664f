"""Nearest-neighbour search over item vectors, for candidate retrieval and similar items.

``ExactIndex`` scans every vector (numpy, one matrix-vector product): exact, and the right
choice for small catalogs and for small allowed sets. A library index for large catalogs
implements the same ``search``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class VectorIndex(Protocol):
    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """Indices of the ``n`` base vectors with the largest inner product with ``query``
        (d,), best first; only among ``allowed`` (sorted indices) when given."""
        ...


def best(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest scores, best first."""
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, n - 1)[:n]
    return part[np.argsort(-scores[part], kind="stable")]


class ExactIndex:
    """Inner product with every vector of ``vectors`` (n, d), divided by ``norms`` (n,) when
    given (cosine, for a unit query): exact."""

    def __init__(self, vectors: np.ndarray, norms: np.ndarray | None = None) -> None:
        self.vectors, self.norms = vectors, norms

    def _scores(self, rows: np.ndarray | None, query: np.ndarray) -> np.ndarray:
        vectors = np.asarray(self.vectors if rows is None else self.vectors[rows])
        scores = vectors @ query
        if self.norms is not None:
            norms = np.asarray(self.norms if rows is None else self.norms[rows])
            scores = scores / np.maximum(norms, np.float32(1e-12))
        return scores

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        if allowed is not None:
            return allowed[best(self._scores(allowed, query), n)]
        return best(self._scores(None, query), n).astype(np.int64)
