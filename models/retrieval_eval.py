"""Two-stage serving against exhaustive scoring on held-out users, both through
``Recommender.recommend`` on the same exported artifact: test NDCG@100 of each, and the mean
overlap of their top-10 lists, unfiltered and with category filters that allow about 1%, 10%
and 50% of the catalog."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from app.scoring import artifact
from app.scoring.recommender import Filters, Recommender
from app.scoring.retrieval import Pools
from models.metrics import ndcg_at_k
from models.pipeline import Log
from models.report import Heldout, map_heldout, recommender_lists

SHARES = (0.01, 0.10, 0.50)


def category_filter(categories: list[str | None], share: float) -> tuple[Filters, float] | None:
    """Categories, smallest first, until they hold ``share`` of the items: (the filter, its
    exact share); None when the catalog has no categories."""
    counts = Counter(c for c in categories if c)
    if not counts:
        return None
    chosen, held = [], 0
    for category, n in sorted(counts.items(), key=lambda pair: (pair[1], pair[0])):
        if held >= share * len(categories):
            break
        chosen.append(category)
        held += n
    return Filters.of(chosen, None, None, None), held / len(categories)


def overlap_at(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean |top-k of a  ∩  top-k of b| / (the shorter list's length, at most k)."""
    values = []
    for left, right in zip(a[:, :k], b[:, :k], strict=True):
        left, right = set(left[left >= 0].tolist()), set(right[right >= 0].tolist())
        if left or right:
            values.append(len(left & right) / max(1, min(len(left), len(right))))
    return float(np.mean(values)) if values else float("nan")


def compare(version_dir: Path, heldout: Heldout, *, log: Log, pools: Pools | None = None) -> dict[str, Any]:
    loaded = artifact.load(version_dir)
    exhaustive = Recommender(loaded, mode="exhaustive")
    two_stage = Recommender(loaded, mode="two_stage", pools=pools)
    mapped = map_heldout(heldout, [bytes(i).decode() for i in loaded.arrays["item_ids"]])
    categories = [exhaustive.catalog.record(i).get("category") for i in range(exhaustive.n_items)]
    cases: list[tuple[str, Filters | None, float]] = [("no filter", None, 1.0)]
    for share in SHARES:
        found = category_filter(categories, share)
        if found is not None:
            cases.append((f"categories holding {found[1]:.1%} of the items", *found))
    out: dict[str, Any] = {"pools": (pools or two_stage.pools).__dict__}
    for name, filters, share in cases:
        ex = recommender_lists(exhaustive, mapped, filters=filters)
        ts = recommender_lists(two_stage, mapped, filters=filters)
        # A short list gets smaller candidate pools (Pools.for_k): its own overlap, as served.
        ts10 = recommender_lists(two_stage, mapped, filters=filters, k=10)
        row = {
            "share": share,
            "ndcg@100 exhaustive": float(ndcg_at_k(ex, mapped.target, 100).mean()),
            "ndcg@100 two-stage": float(ndcg_at_k(ts, mapped.target, 100).mean()),
            "overlap@10": overlap_at(ex, ts),
            "overlap@10, k=10": overlap_at(ex, ts10),
            "full lists": float(
                np.mean([(t >= 0).sum() == (e >= 0).sum() for t, e in zip(ts, ex, strict=True)])
            ),
        }
        out[name] = row
        log(f"two-stage vs exhaustive, {name}: {row}")
    return out
