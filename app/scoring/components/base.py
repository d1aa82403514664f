"""The component seam, serving side: one blend component is the artifact arrays it owns, how
it scores a batch of histories (for every item, or for candidate items), which candidates it
proposes for one history (two-stage serving), and how it takes catalog changes.

A component's arrays are named in :attr:`Component.arrays` with their dtype and shape (names
of ``manifest["dims"]``); an array whose first dim is ``n_items`` holds one row per item of
the artifact. Training writes the same names (``models/components/``), so the artifact
loader, the blend, retrieval and catalog changes loop over
:data:`app.scoring.components.REGISTRY` without knowing any component.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from app.scoring.ann import VectorIndex
from app.scoring.rows import Histories

ArraySpec = tuple[str, tuple[str, ...]]  # (dtype, shape as names of manifest["dims"])


class Component:
    name: ClassVar[str]
    arrays: ClassVar[dict[str, ArraySpec]]
    # The vector sets it searches by inner product (app.scoring.ann): exact by default, an
    # approximate index from the artifact when it has one (large catalogs).
    index_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.n_base = len(arrays["popularity"])
        self.n_items = self.n_base  # grows with new catalog items
        self.indexes: dict[str, VectorIndex] = {}

    def index_vectors(self, name: str) -> np.ndarray:
        """(n_base, d) rows of index ``name`` (export time: the approximate index is built
        from them); a query's inner product with a row is what ``indexes[name]`` ranks by."""
        raise NotImplementedError

    def prepare(self, histories: Histories) -> Any:
        """Per-batch state computed once and shared by ``score`` and ``candidates`` (the VAE's
        user vectors, the content profiles, one history's item-item scores); None: none."""
        return None

    def score(
        self, histories: Histories, prepared: Any = None, items: np.ndarray | None = None
    ) -> np.ndarray:
        """Raw scores (B, n_items) float32, or (B, len(items)) for the given item indices."""
        raise NotImplementedError

    def candidates(self, history: Histories, prepared: Any, n: int, allowed: np.ndarray | None) -> np.ndarray:
        """Up to ``n`` item indices this component ranks highest for one history (best
        first), among ``allowed`` (sorted indices) when given. Default: none."""
        return np.zeros(0, dtype=np.int64)

    def apply_changes(
        self,
        *,
        changed: np.ndarray,
        new: np.ndarray,
        features: np.ndarray,
        components: Mapping[str, Component],
    ) -> None:
        """Take catalog changes: ``changed`` item indices (sorted, ``new`` among them, past the
        artifact's items) with their item-feature rows ``features``. Components run in registry
        order, so a later one can read what an earlier one of ``components`` set (the VAE maps
        the content embedding of a new item)."""
        if len(new):
            self.n_items = max(self.n_items, int(new.max()) + 1)


def per_item(spec: ArraySpec) -> bool:
    return bool(spec[1]) and spec[1][0] == "n_items"
