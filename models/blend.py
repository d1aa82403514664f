"""Blend weights on validation NDCG@100, for any number of components, scored as served.

The blend is sum_c w_c z_c, z_c the per-user standardised scores of component c; the ranking
does not change when every weight is scaled, so the first component with a nonzero weight
is the anchor. Coordinate ascent: starting from equal weights, each component's weight is
set to the best value of ``grid`` with the others fixed, for ``rounds`` rounds (the N-weight
generalisation of a grid search, at len(grid) x N x rounds evaluations, not len(grid)^N).

Standardised over what is served: every item (exhaustive mode: :class:`DenseParts`), or each
user's retrieval candidates (two-stage mode, large catalogs: :class:`CandidateParts`, which
never holds a users x items array).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import scipy.sparse as sp

from app.scoring.ann import best
from app.scoring.retrieval import Pools, candidates
from app.scoring.rows import histories_matrix
from app.scoring.scorer import Scorer, standardise, top_k
from models.metrics import ndcg_at_k, summarize

K = 100
Log = Callable[[str], None]


class DenseParts:
    """Each component's standardised scores of every item: (n_users, n_items) each."""

    def __init__(self, scorer: Scorer, foldin: sp.csr_matrix) -> None:
        self.parts = {name: standardise(s) for name, s in scorer.component_scores(foldin).items()}
        self.exclude = foldin.toarray() > 0
        self.n_items = scorer.n_items

    def ranked(self, weights: Mapping[str, float]) -> np.ndarray:
        total = np.zeros(self.exclude.shape, np.float32)
        for name, z in self.parts.items():
            if weights.get(name, 0.0):
                total += np.float32(weights[name]) * z
        return top_k(total, K, exclude=self.exclude)


class CandidateParts:
    """Per user: the two-stage candidates (every component's and the popular items, the
    fold-in excluded) and each component's z-scores of them (moments over the catalog, as
    serving standardises them). Components that search a batch faster than one history at a
    time (an exact scan of 1M x 200 decoder rows: ~160 ms a user alone, ~25 ms in a batch) propose for
    ``batch`` users at once."""

    def __init__(
        self,
        scorer: Scorer,
        foldin: sp.csr_matrix,
        popular_order: np.ndarray,
        pools: Pools,
        *,
        batch: int = 256,
    ) -> None:
        self.names = list(scorer.components)
        self.pools: list[np.ndarray] = []
        self.z: list[np.ndarray] = []  # (n_components, len(pool)) per user
        proposed: dict[str, list[np.ndarray]] = {}
        for u in range(foldin.shape[0]):
            if u % batch == 0:
                proposed = self._propose(scorer, foldin[u : u + batch], pools)
            start, end = foldin.indptr[u], foldin.indptr[u + 1]
            items, values = foldin.indices[start:end], foldin.data[start:end]
            row = histories_matrix([(items, values)], scorer.n_items)
            prepared = scorer.prepare(row)
            pool = candidates(
                scorer, None, popular_order, row, prepared=prepared, k=K, exclude=set(items.tolist()),
                filters=None, pools=pools, every_component=True,
                proposed={name: found[u % batch] for name, found in proposed.items()},
            )  # fmt: skip
            z = scorer.standardised_items(row, pool, prepared=prepared)
            self.pools.append(pool)
            self.z.append(np.vstack([z[n][0] for n in self.names]))

    @staticmethod
    def _propose(scorer: Scorer, rows: sp.csr_matrix, pools: Pools) -> dict[str, list[np.ndarray]]:
        """The batched components' candidates for ``rows``: as many as the longest history
        needs (retrieval asks for per-k candidates plus the excluded history)."""
        n = pools.for_k(K) + int(np.diff(rows.indptr).max(initial=0))
        prepared = scorer.prepare(rows)
        found = {
            name: c.candidates_many(rows, prepared.get(name), n) for name, c in scorer.components.items()
        }
        return {name: lists for name, lists in found.items() if lists is not None}

    def ranked(self, weights: Mapping[str, float]) -> np.ndarray:
        w = np.array([weights.get(n, 0.0) for n in self.names], dtype=np.float32)
        out = np.full((len(self.pools), K), -1, dtype=np.int64)
        for u, (pool, z) in enumerate(zip(self.pools, self.z, strict=True)):
            order = best(w @ z, K)
            out[u, : len(order)] = pool[order]
        return out


def parts_for(
    scorer: Scorer, foldin: sp.csr_matrix, *, mode: str, popular_order: np.ndarray, pools: Pools
) -> DenseParts | CandidateParts:
    if mode == "exhaustive":
        return DenseParts(scorer, foldin)
    return CandidateParts(scorer, foldin, popular_order, pools)


def search_blend(
    parts: DenseParts | CandidateParts,
    target: sp.csr_matrix,
    *,
    grid: list[float],
    rounds: int = 2,
    log: Log = print,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Returns the best weights and every tried point (the ablation table). ``target``: the
    validation users' targets, aligned with the fold-in rows ``parts`` were built from."""
    names = list(parts.parts) if isinstance(parts, DenseParts) else parts.names
    tried: dict[tuple[float, ...], float] = {}

    def ndcg(weights: dict[str, float]) -> float:
        key = tuple(weights[n] for n in names)
        if key not in tried:
            tried[key] = float(ndcg_at_k(parts.ranked(weights), target, K).mean())
        return tried[key]

    weights = dict.fromkeys(names, 1.0)
    for _ in range(rounds):
        for name in names:
            options = [{**weights, name: w} for w in grid if any({**weights, name: w}.values())]
            weights = max(options, key=ndcg)
        log(f"blend weights {weights}: validation ndcg@100 {ndcg(weights):.4f}")
    table = [dict(zip(names, key, strict=True)) | {"ndcg@100": value} for key, value in tried.items()]
    return weights, table


def metrics(
    parts: DenseParts | CandidateParts, target: sp.csr_matrix, weights: Mapping[str, float], n_items: int
) -> dict[str, float]:
    """The summary metrics of one weight vector (a component alone: weight 1 on it)."""
    return summarize(parts.ranked(weights), target, n_items)
