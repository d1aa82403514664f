"""Blend weights on validation NDCG@100, for any number of components.

The blend is sum_c w_c z_c, z_c the per-user standardised scores of component c; the ranking
does not change when every weight is scaled, so the first component with a nonzero weight
is the anchor. Coordinate ascent: starting from equal weights, each component's weight is
set to the best value of ``grid`` with the others fixed, for ``rounds`` rounds (the N-weight
generalisation of a grid search, at len(grid) x N x rounds evaluations, not len(grid)^N).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from app.scoring.scorer import Scorer, standardise, top_k
from models.metrics import ndcg_at_k

K = 100


def search_blend(
    scorer: Scorer,
    foldin: sp.csr_matrix,
    target: sp.csr_matrix,
    *,
    grid: list[float],
    rounds: int = 2,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Returns the best weights and every tried point (the ablation table)."""
    rows = np.flatnonzero(np.diff(target.indptr) > 0)
    foldin, target = foldin[rows], target[rows]
    parts = {name: standardise(s) for name, s in scorer.component_scores(foldin).items()}
    exclude = foldin.toarray() > 0
    tried: dict[tuple[float, ...], float] = {}
    names = list(parts)

    def ndcg(weights: dict[str, float]) -> float:
        key = tuple(weights[n] for n in names)
        if key not in tried:
            total = np.zeros((foldin.shape[0], scorer.n_items), np.float32)
            for name, z in parts.items():
                if weights[name]:
                    total += np.float32(weights[name]) * z
            tried[key] = float(ndcg_at_k(top_k(total, K, exclude=exclude), target, K).mean())
        return tried[key]

    weights = dict.fromkeys(names, 1.0)
    for _ in range(rounds):
        for name in names:
            options = [{**weights, name: w} for w in grid if any({**weights, name: w}.values())]
            weights = max(options, key=ndcg)
        log(f"blend weights {weights}: validation ndcg@100 {ndcg(weights):.4f}")
    table = [dict(zip(names, key, strict=True)) | {"ndcg@100": value} for key, value in tried.items()]
    return weights, table
