"""Accuracy against diversity: the served artifact's top 10 at several ``diversity`` settings,
one request per test user through ``Recommender.recommend`` (the serving path).

Per setting: NDCG@10 and recall@10 on the held-out targets, intra-list diversity (mean
pairwise cosine distance of the list's collaborative item vectors, the space the re-ranking
uses), distinct categories per list (an attribute the re-ranking never sees), and catalog
coverage (share of items in at least one list).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.scoring import artifact
from app.scoring.recommender import Recommender, Rerank
from app.scoring.rerank import intra_list_diversity
from models.blend import Log
from models.metrics import coverage_at_k, ndcg_at_k, recall_at_k
from models.report import Heldout, map_heldout, recommender_lists

SETTINGS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
K = 10


def curve(
    version_dir: Path, heldout: Heldout, *, settings: Sequence[float] = SETTINGS, log: Log = print
) -> list[dict[str, Any]]:
    """One row per diversity setting (metrics averaged over every test user, as the served
    metrics are: one whose fold-in the artifact does not know gets popular items)."""
    recommender = Recommender(artifact.load(version_dir))
    mapped = map_heldout(heldout, [bytes(i).decode() for i in recommender.artifact.arrays["item_ids"]])
    rows = []
    for d in settings:
        ranked = recommender_lists(recommender, mapped, k=K, rerank=Rerank(d))
        diversity, categories = [], []
        for found in ranked:
            found = found[found >= 0]
            vectors = recommender.item_vectors(found)
            diversity.append(intra_list_diversity(vectors) if vectors is not None else 0.0)
            named = recommender.catalog.values(found, "category")
            categories.append(len({c for c in named if c is not None}))
        row = {
            "diversity": d,
            "ndcg@10": float(ndcg_at_k(ranked, mapped.target, K).mean()),
            "recall@10": float(recall_at_k(ranked, mapped.target, K).mean()),
            "ild@10": float(np.mean(diversity)),
            "categories@10": float(np.mean(categories)),
            "coverage@10": coverage_at_k(ranked, mapped.n_items, K),
        }
        log(
            f"diversity {d:.1f}: ndcg@10 {row['ndcg@10']:.4f} ild@10 {row['ild@10']:.3f} "
            f"categories@10 {row['categories@10']:.2f} coverage@10 {row['coverage@10']:.3f}"
        )
        rows.append(row)
    return rows
