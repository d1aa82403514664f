"""Two-stage serving, stage one: a bounded candidate set for one request, from several
sources, with filters and exclusions applied inside retrieval.

Sources (:class:`Pools` sizes): each component's own candidates (the VAE's nearest decoder
rows by maximum inner product, the item-item neighbours of the history, the nearest content
vectors to the history's profile) and the most popular items that pass the filter.
Filters: a filter that allows few items (at most ``exact_limit``, found through the
catalog's category/brand/price indexes) makes those items the candidates, scored exactly;
one that allows many is applied to the sources' candidates, each source asked for more in
proportion (up to ``max_oversample``); if fewer than k eligible candidates remain, popular
items that pass the filter fill up, so a request returns k items whenever k items pass.

Stage two (exact re-ranking of the candidates with the blend) is
:meth:`app.scoring.scorer.Scorer.score_items`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.scoring.ann import distinct, member
from app.scoring.catalog import Catalog, Filters
from app.scoring.rows import Histories
from app.scoring.scorer import Scorer


@dataclass(frozen=True)
class Pools:
    """How many candidates each source proposes (before oversampling for filters): ``per_k``
    per item asked for, within [``min_per_component``, ``per_component``] (k=10: 50, k=100
    and more: 500), so a short list does not pay for the candidates of a long one. 5 per
    item: at k=10, 50 instead of 100 per component cost 0.13 ms less a request on Beauty for
    a top-10 overlap with exhaustive scoring of 0.999-1.000 (docs/evaluation.md)."""

    per_component: int = 500
    popular: int = 100
    exact_limit: int = 20_000  # a filter allowing at most this many items is scored exactly
    max_oversample: int = 8
    per_k: int = 5
    min_per_component: int = 50

    def for_k(self, k: int) -> int:
        """Candidates per component for a list of ``k`` items."""
        return max(min(self.per_k * k, self.per_component), min(self.min_per_component, self.per_component))


def popular_passing(
    catalog: Catalog | None,
    popular_order: np.ndarray,
    n: int,
    filters: Filters | None,
    exclude: Collection[int],
) -> np.ndarray:
    """The ``n`` most popular items that pass ``filters`` and are not excluded, walking the
    popularity order in growing chunks (new catalog items, with no popularity, come last).
    No ``catalog`` (offline, at training time): every item is available, nothing filters."""
    found: list[np.ndarray] = []
    count, start, chunk = 0, 0, max(4 * n, 256)
    excluded = np.fromiter(exclude, dtype=np.int64) if exclude else np.zeros(0, np.int64)
    order = popular_order
    while count < n and start < len(order):
        block = np.asarray(order[start : start + chunk], dtype=np.int64)
        passes = catalog.passes(block, filters) if catalog is not None else np.ones(len(block), bool)
        block = block[passes & ~member(block, excluded)]
        found.append(block[: n - count])
        count += len(found[-1])
        start, chunk = start + chunk, chunk * 4
    if catalog is not None and count < n and catalog.n_items > catalog.n_base:  # new items come last
        extra = np.arange(catalog.n_base, catalog.n_items, dtype=np.int64)
        extra = extra[catalog.passes(extra, filters) & ~member(extra, excluded)]
        found.append(extra[: n - count])
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def candidates(
    scorer: Scorer,
    catalog: Catalog | None,
    popular_order: np.ndarray,
    history: Histories,
    *,
    prepared: dict[str, Any],
    k: int,
    exclude: Collection[int],
    filters: Filters | None,
    pools: Pools,
    every_component: bool = False,
    proposed: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Sorted, distinct item indices to score exactly for one history: eligible (available,
    passing the filter, not excluded), at least ``k`` of them whenever k items are eligible.

    ``catalog`` None: offline, every item available and no filter; ``every_component``: every
    component proposes candidates, whatever its blend weight (a blend search); ``proposed``:
    components' candidates computed for a batch (:meth:`Component.candidates_many`, best
    first, at least as many as asked for here), no filter."""
    excluded = np.fromiter(exclude, dtype=np.int64) if exclude else np.zeros(0, np.int64)
    allowed, selectivity = None, 1.0
    if catalog is not None and filters is not None and not filters.empty:
        allowed, selectivity = catalog.plan(filters, pools.exact_limit)
    if allowed is not None:  # few items pass: score them all
        return np.setdiff1d(allowed, excluded)
    oversample = min(pools.max_oversample, max(1.0, 1.0 / max(selectivity, 1e-9)))
    n = int(pools.for_k(k) * oversample) + len(excluded)
    given = proposed or {}
    pool = distinct(
        *(
            given[name][:n] if name in given else component.candidates(history, prepared.get(name), n, None)
            for name, component in scorer.components.items()
            if every_component or scorer.weights.get(name, 0.0) != 0.0
        )
    )
    passes = catalog.passes(pool, filters) if catalog is not None else np.ones(len(pool), bool)
    pool = pool[passes & ~member(pool, excluded)]
    fill = popular_passing(catalog, popular_order, max(pools.popular, k), filters, exclude)
    return distinct(pool, fill)
