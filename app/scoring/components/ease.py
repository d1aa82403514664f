"""The item-item component (EASE family): a sparse items x items weight matrix B, exported
as CSR over source items; a history h scores h @ B.

Catalog items added between trainings have no row or column yet (their ``indptr`` entries
repeat the last offset): they score 0 here until the next training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from app.scoring.components.base import ArraySpec, Component
from app.scoring.rows import Histories


class ItemItem(Component):
    name = "ease"
    arrays: ClassVar[dict[str, ArraySpec]] = {
        "ease_indptr": ("int64", ("n_items_1",)),
        "ease_indices": ("int32", ("ease_nnz",)),
        "ease_data": ("float32", ("ease_nnz",)),
    }

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        super().__init__(arrays)
        self.indptr = np.asarray(arrays["ease_indptr"])
        self.indices = np.asarray(arrays["ease_indices"])
        self.data = np.asarray(arrays["ease_data"])
        self.matrix = sp.csr_matrix(
            (self.data, self.indices, self.indptr), shape=(self.n_items, self.n_items)
        )

    def score(
        self, histories: Histories, prepared: np.ndarray | None = None, items: np.ndarray | None = None
    ) -> np.ndarray:
        """histories @ B, accumulated with one bincount (no sparse-matrix objects: their
        construction dominates a one-user request)."""
        batch = histories.shape[0]
        rows = np.repeat(np.arange(batch), np.diff(histories.indptr))
        starts, ends = self.indptr[histories.indices], self.indptr[histories.indices + 1]
        lengths = ends - starts
        # Positions of every neighbour of every history item, concatenated.
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        flat = np.repeat(rows * self.n_items, lengths) + self.indices[offsets]
        weights = np.repeat(histories.data, lengths) * self.data[offsets]
        scores = np.bincount(flat, weights=weights, minlength=batch * self.n_items)
        scores = scores.reshape(batch, self.n_items).astype(np.float32)
        return scores if items is None else scores[:, items]
