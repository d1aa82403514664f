"""The one thing the demo storefront (/demo) needs beyond the public API: known shoppers of
the serving model to pick from, and the catalog's categories for its filter. Routed only
with SHOPREC_DEMO (user ids are not something a production API lists)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query

from app.auth import ReaderRoute
from app.deps import RecommenderDep
from app.errors import responses
from app.schemas import DemoShop, DemoShopper
from app.scoring.recommender import Recommender

router = APIRouter(prefix="/v1/demo", tags=["demo"], route_class=ReaderRoute)


@router.get("/shop", response_model=DemoShop, responses=responses(401, 403, 422, 503))
async def demo_shop(
    recommender: RecommenderDep, shoppers: Annotated[int, Query(ge=1, le=100)] = 12
) -> DemoShop:
    """Known shoppers (short to long histories) and the catalog's categories."""
    categories = list(recommender.catalog.categories)
    return DemoShop(
        shoppers=known_shoppers(recommender, shoppers),
        categories=categories,
        model_version=recommender.version,
    )


def known_shoppers(recommender: Recommender, n: int) -> list[DemoShopper]:
    """``n`` users of the serving model spread evenly from the shortest training history to
    the longest: a short history shows one click's effect best, a long one a stable taste."""
    users = recommender.artifact.users
    if not users:
        return []
    sizes = np.diff(np.asarray(recommender.artifact.arrays["user_indptr"]))
    by_size = np.argsort(sizes, kind="stable")
    picks = dict.fromkeys(by_size[np.linspace(0, len(users) - 1, min(n, len(users))).round().astype(int)])
    out = []
    for u in picks:
        idx, _ = recommender.training_history(users[u])
        codes = np.asarray(recommender.artifact.arrays["item_category"])[
            idx[idx < recommender.catalog.n_base]
        ]
        counts = Counter(recommender.catalog.categories[c] for c in codes if c >= 0)
        out.append(
            DemoShopper(
                user_id=users[u],
                interactions=int(sizes[u]),
                categories=[c for c, _ in counts.most_common(2)],
            )
        )
    return out
