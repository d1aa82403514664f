"""The component seam, serving side: one blend component is the artifact arrays it owns, how
it scores a batch of histories, and how it takes a new catalog item.

A component's arrays are named in :attr:`Component.arrays` with their dtype and shape (names
of ``manifest["dims"]``); an array whose first dim is ``n_items`` holds one row per item and
grows with the catalog (``n_items_1``: a CSR ``indptr`` over items). Training writes the same
names (``models/components/``), so the artifact loader, catalog growth and the blend loop
over :data:`app.scoring.components.REGISTRY` without knowing any component.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from app.scoring.rows import Histories

ArraySpec = tuple[str, tuple[str, ...]]  # (dtype, shape as names of manifest["dims"])


class Component:
    name: ClassVar[str]
    arrays: ClassVar[dict[str, ArraySpec]]

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.n_items = len(arrays["popularity"])

    def prepare(self, histories: Histories) -> np.ndarray | None:
        """Per-row state computed once per batch and reusable across calls (the VAE's user
        vectors); None when the component has none."""
        return None

    def score(
        self, histories: Histories, prepared: np.ndarray | None = None, items: np.ndarray | None = None
    ) -> np.ndarray:
        """Raw scores (B, n_items) float32, or (B, len(items)) for the given item indices."""
        raise NotImplementedError

    @classmethod
    def on_catalog_change(
        cls, arrays: dict[str, np.ndarray], *, changed: np.ndarray, new: np.ndarray, features: np.ndarray
    ) -> None:
        """Fill this component's rows of changed and new items in place. The per-item arrays
        already have zero rows for new items (``new`` indexes them); ``features`` (len(changed),
        feature_dim) are the item-feature rows of ``changed`` (new items included). Components
        run in registry order, so a later one can read what an earlier one wrote."""


def per_item(spec: ArraySpec) -> bool:
    return bool(spec[1]) and spec[1][0] == "n_items"
