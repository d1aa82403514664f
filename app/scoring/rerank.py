"""Re-ranking after relevance: business rules (boost or bury by attribute) and diversity
(maximal marginal relevance, Carbonell & Goldstein 1998), applied to a list that filters and
exclusions have already shaped.

Both work on the best ``pool_size(k)`` items of the relevance ranking, on one scale:
relevance rescaled over those candidates to [0.01, 1] (the best candidate 1, the last 0.01),
so a rule's factor multiplies a positive number and a boost (factor > 1) can never push an
item down, whatever the sign of the blend's scores. With diversity d the next item is the
candidate with the largest

    (1 - d) * relevance * factor  -  d * max cosine to the items already chosen

over the item vectors the recommender passes (decoder embeddings: items bought together are
close). d = 0 and no rule: the relevance order, untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

FLOOR = 0.01  # the last candidate's relevance on the re-ranking scale


@dataclass(frozen=True)
class Rerank:
    """What a request asks of the re-ranking: a diversity share in [0, 1] and factors per
    attribute value (``{"brand": {"acme": 1.2}}``: > 1 boosts, < 1 buries)."""

    diversity: float = 0.0
    boosts: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.diversity > 0 or any(self.boosts.values())


def pool_size(k: int) -> int:
    """How many of the best items re-ranking chooses the k from."""
    return max(50, 5 * k)


def relevance_scale(scores: np.ndarray) -> np.ndarray:
    """Scores (best first or not) rescaled to [FLOOR, 1] in float64: order kept, every value
    positive."""
    scores = np.asarray(scores, dtype=np.float64)
    if not len(scores):
        return scores
    low, high = scores.min(), scores.max()
    if high - low <= 0:
        return np.ones(len(scores))
    return np.clip(FLOOR + (1 - FLOOR) * (scores - low) / (high - low), FLOOR, 1.0)


def factors(
    values: Mapping[str, Sequence[str | None]], boosts: Mapping[str, Mapping[str, float]]
) -> np.ndarray:
    """Per candidate, the product of the factors its attribute values match (1: none).

    values: attribute -> each candidate's value (None: the item has none)."""
    n = len(next(iter(values.values()))) if values else 0
    out = np.ones(n)
    for attribute, table in boosts.items():
        for i, value in enumerate(values[attribute]):
            if value is not None and value in table:
                out[i] *= table[value]
    return out


def order(relevance: np.ndarray, k: int, *, diversity: float, vectors: np.ndarray | None) -> np.ndarray:
    """Positions of the k chosen candidates, in order. relevance: [FLOOR, 1]-scaled, factors
    applied; vectors: (n, d) item vectors (rows need not be unit length) or None."""
    n = len(relevance)
    k = min(k, n)
    if diversity <= 0 or vectors is None or n <= 1:
        return np.argsort(-relevance, kind="stable")[:k]
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = (unit @ unit.T).astype(np.float64)
    gain = (1 - diversity) * relevance
    closest = np.full(n, -np.inf)  # max similarity to the chosen items
    chosen: list[int] = []
    free = np.ones(n, bool)
    for _ in range(k):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = np.where(free, gain - diversity * penalty, -np.inf)
        pick = int(np.argmax(value))
        chosen.append(pick)
        free[pick] = False
        closest = np.maximum(closest, similarity[pick])
    return np.array(chosen, dtype=np.int64)


def intra_list_diversity(vectors: np.ndarray) -> float:
    """Mean pairwise cosine distance (1 - cos) of a list's item vectors (0 for < 2 items)."""
    if len(vectors) < 2:
        return 0.0
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sim = unit @ unit.T
    n = len(vectors)
    return float((n * n - sim.sum()) / (n * (n - 1)))
