"""Numpy scoring: every blend component scores a batch of histories, the blend standardises
each per row and sums them with the artifact's weights; masks and top-k.

This is the one scoring path: the API calls it for one user, offline evaluation and
training's blend search call it for batches. Histories are CSR rows of shape
(batch, n_items), float32 event weights (:mod:`app.scoring.rows`). Everything stays float32.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from app.scoring.ann import best_rows
from app.scoring.components import REGISTRY, Component

# Re-exported: request code builds histories through the scorer module.
from app.scoring.rows import Histories, Rows, histories_matrix  # noqa: F401


class Scorer:
    """The artifact's components (arrays memory-mapped or in memory) and blend weights."""

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        weights: Mapping[str, float],
        components: Iterable[str] | None = None,
    ) -> None:
        """components: names in REGISTRY; default every component whose arrays are present."""
        if components is None:
            components = [n for n, c in REGISTRY.items() if all(a in arrays for a in c.arrays)]
        self.arrays = arrays
        self.components: dict[str, Component] = {n: REGISTRY[n](arrays) for n in REGISTRY if n in components}
        self.weights = {name: float(weights.get(name, 0.0)) for name in self.components}
        self.n_base = len(arrays["popularity"])

    @property
    def n_items(self) -> int:
        """Items of the artifact plus those added to the catalog since."""
        return max((c.n_items for c in self.components.values()), default=self.n_base)

    def apply_changes(self, *, changed: np.ndarray, new: np.ndarray, features: np.ndarray) -> None:
        """Every component takes the catalog changes, in registry order."""
        for component in self.components.values():
            component.apply_changes(changed=changed, new=new, features=features, components=self.components)

    def prepare(self, histories: Histories, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every component's per-batch state (``given``: some computed elsewhere, e.g. a known
        user's stored VAE vector)."""
        given = given or {}
        return {n: given[n] if n in given else c.prepare(histories) for n, c in self.components.items()}

    def component_scores(
        self,
        histories: Histories,
        *,
        only: Iterable[str] | None = None,
        prepared: Mapping[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """Raw scores of each component (all, or ``only`` these), each (B, n_items) float32.

        prepared: per-component state computed earlier (e.g. a known user's VAE vector)."""
        names = self.components if only is None else [n for n in self.components if n in set(only)]
        prepared = prepared or {}
        return {n: self.components[n].score(histories, prepared.get(n)) for n in names}

    def score(
        self,
        histories: Histories,
        *,
        weights: Mapping[str, float] | None = None,
        prepared: Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """Blended scores (B, n_items): sum of w_c * per-row standardised component c."""
        weights = self.weights if weights is None else weights
        used = [name for name in self.components if weights.get(name, 0.0) != 0.0]
        parts = self.component_scores(histories, only=used, prepared=prepared)
        return blend(parts, weights, batch=histories.shape[0], n_items=self.n_items)

    def score_items(
        self,
        histories: Histories,
        items: np.ndarray,
        *,
        weights: Mapping[str, float] | None = None,
        prepared: Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """Blended scores (B, len(items)) of candidate items, each component standardised with
        its scores' mean and deviation over the catalog (two-stage serving's exact re-ranking:
        a candidate gets the blended score exhaustive scoring gives it)."""
        weights = self.weights if weights is None else weights
        used = [name for name in self.components if weights.get(name, 0.0) != 0.0]
        total = np.zeros((histories.shape[0], len(items)), dtype=np.float32)
        for name, z in self.standardised_items(histories, items, prepared=prepared, only=used).items():
            total += np.float32(weights[name]) * z
        return total

    def standardised_items(
        self,
        histories: Histories,
        items: np.ndarray,
        *,
        prepared: Mapping[str, Any] | None = None,
        only: Iterable[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Each component's (B, len(items)) z-scores of ``items``: (score - mean) / std, the
        moments over the catalog (:meth:`Component.moments`)."""
        prepared = prepared or {}
        names = self.components if only is None else [n for n in self.components if n in set(only)]
        out = {}
        for name in names:
            component, state = self.components[name], prepared.get(name)
            mean, std = component.moments(histories, state)
            raw = component.score(histories, state, items)
            out[name] = ((raw - mean) / np.maximum(std, np.float32(1e-12))).astype(np.float32, copy=False)
        return out

    def warm(self) -> None:
        """Compute what two-stage scoring computes on first use (the linear moments)."""
        for component in self.components.values():
            component.warm()


def blend(
    parts: Mapping[str, np.ndarray], weights: Mapping[str, float], *, batch: int, n_items: int
) -> np.ndarray:
    """Weighted sum of row-standardised score matrices; scales differ across components."""
    total = np.zeros((batch, n_items), dtype=np.float32)
    for name, scores in parts.items():
        weight = np.float32(weights.get(name, 0.0))
        if weight:
            total += weight * standardise(scores)
    return total


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-score, float32; constant rows become zeros."""
    mean = scores.mean(axis=1, keepdims=True, dtype=np.float32)
    std = scores.std(axis=1, keepdims=True, dtype=np.float32)
    return ((scores - mean) / np.maximum(std, np.float32(1e-12))).astype(np.float32, copy=False)


def top_k(scores: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k best items per row, best first.

    scores: (B, n_items) float32 (modified in place where ``exclude`` is true: -inf).
    exclude: (B, n_items) bool, or None. Excluded items are never returned; rows with
    fewer than k eligible items return fewer (the result is then padded with -1).
    """
    if exclude is not None:
        scores[exclude] = -np.inf
    ranked = best_rows(scores, k)
    if exclude is not None:
        ranked = np.where(np.isneginf(np.take_along_axis(scores, ranked, axis=1)), -1, ranked)
    return ranked
