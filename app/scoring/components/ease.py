"""The item-item component (EASE family): a sparse items x items weight matrix B, exported
as CSR over source items; a history h scores h @ B.

Its scores are nonzero only on the neighbours of the history's items, so one history's
scores are accumulated over those neighbours alone (sorted, summed per item): the cost grows
with the history, not the catalog, and the neighbours with the best scores are this
component's retrieval candidates. Catalog items added between trainings have no row or
column yet: they score 0 here until the next training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from app.scoring.ann import best
from app.scoring.components.base import ArraySpec, Component
from app.scoring.rows import Histories

if TYPE_CHECKING:  # scipy is imported where a sparse matrix is built: serving needs none
    import scipy.sparse as sp

# Sums per item over a dense catalog-long row when the catalog is at most this many times the
# history's neighbours (a bincount: ~3 ns an item), else by sorting the neighbours (~20 ns each).
DENSE_PER_NEIGHBOUR = 8
# Up to this many history items, their rows of B are joined slice by slice (~1 us each; the
# vectorised gather of their offsets costs ~80 us for 20 items of 500 neighbours).
SLICED_SOURCES = 256


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

    @property
    def matrix(self) -> sp.csr_matrix:
        """B as a scipy CSR over the artifact's items (explanations, offline use)."""
        import scipy.sparse as sp  # offline only: serving never imports scipy

        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=(self.n_base, self.n_base))

    def neighbours(self, histories: Histories) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, item, weight) of every neighbour of every history item, weighted by the
        history weight, concatenated (items past the artifact's have no neighbours)."""
        rows = np.repeat(np.arange(histories.shape[0]), np.diff(histories.indptr))
        known = histories.indices < self.n_base
        sources, rows, weights = histories.indices[known], rows[known], histories.data[known]
        starts, ends = self.indptr[sources], self.indptr[sources + 1]
        lengths = ends - starts
        if len(sources) <= SLICED_SOURCES:  # a request's history: its rows' slices, joined
            spans = list(zip(starts.tolist(), ends.tolist(), strict=True))
            items = np.concatenate([np.zeros(0, np.int32), *(self.indices[a:b] for a, b in spans)])
            data = np.concatenate([np.zeros(0, np.float32), *(self.data[a:b] for a, b in spans)])
        else:
            offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
            items, data = self.indices[offsets], self.data[offsets]
        return np.repeat(rows, lengths), items.astype(np.int64), np.repeat(weights, lengths) * data

    def sparse_scores(self, history: Histories) -> tuple[np.ndarray, np.ndarray]:
        """One history's nonzero scores: (sorted items, their scores float32)."""
        _, items, weights = self.neighbours(history)
        if self.n_base <= DENSE_PER_NEIGHBOUR * len(items):  # one pass over a catalog-long row
            # The nonzero sums are the keys (a neighbour whose weights cancel exactly scores 0,
            # as items off the neighbours do). Nonzero of a bool row: ~7 us at 12k items; of
            # the float sums, a branch per item, ~60.
            sums = np.bincount(items, weights=weights, minlength=self.n_base)
            keys = np.flatnonzero(sums != 0)
            return keys, sums[keys].astype(np.float32)
        keys, inverse = np.unique(items, return_inverse=True)
        return keys, np.bincount(inverse, weights=weights, minlength=len(keys)).astype(np.float32)

    def prepare(self, histories: Histories) -> SparseRow | None:
        """One history's sparse scores, computed on first use and then shared by retrieval,
        re-ranking and the moments (a full scan of the catalog never needs them); None for a
        batch."""
        return SparseRow(self, histories) if histories.shape[0] == 1 else None

    def score(
        self, histories: Histories, prepared: Any = None, items: np.ndarray | None = None
    ) -> np.ndarray:
        if items is not None and histories.shape[0] == 1:
            keys, values = self.sparse_scores(histories) if prepared is None else prepared.get()
            pos = np.minimum(np.searchsorted(keys, items), max(len(keys) - 1, 0))
            hit = (keys[pos] == items) if len(keys) else np.zeros(len(items), dtype=bool)
            return np.where(hit, values[pos] if len(keys) else 0.0, 0.0).astype(np.float32)[None, :]
        rows, cols, weights = self.neighbours(histories)
        batch = histories.shape[0]
        flat = rows * self.n_items + cols
        scores = np.bincount(flat, weights=weights, minlength=batch * self.n_items)
        scores = scores.reshape(batch, self.n_items).astype(np.float32)
        return scores if items is None else scores[:, items]

    def moments(self, histories: Histories, prepared: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact: every item off the history's neighbours scores 0, so sums over the nonzero
        scores give the catalog's mean and variance."""
        if prepared is not None:
            values = prepared.get()[1].astype(np.float64)
            sums, squares = np.array([values.sum()]), np.array([values @ values])
        else:
            rows, cols, weights = self.neighbours(histories)
            keys, inverse = np.unique(rows * self.n_items + cols, return_inverse=True)
            values = np.bincount(inverse, weights=weights, minlength=len(keys))
            key_rows = keys // self.n_items
            batch = histories.shape[0]
            sums = np.bincount(key_rows, weights=values, minlength=batch)
            squares = np.bincount(key_rows, weights=values * values, minlength=batch)
        mean = sums / self.n_items
        std = np.sqrt(np.maximum(squares / self.n_items - mean * mean, 0.0))
        return mean.astype(np.float32)[:, None], std.astype(np.float32)[:, None]

    def candidates(self, history: Histories, prepared: Any, n: int, allowed: np.ndarray | None) -> np.ndarray:
        keys, values = self.sparse_scores(history) if prepared is None else prepared.get()
        if allowed is not None:
            keep = np.isin(keys, allowed)
            keys, values = keys[keep], values[keep]
        return keys[best(values, n)]


class SparseRow:
    """One history's item-item scores as (sorted items, scores), computed on first use."""

    def __init__(self, component: ItemItem, history: Histories) -> None:
        self.component, self.history = component, history
        self._value: tuple[np.ndarray, np.ndarray] | None = None

    def get(self) -> tuple[np.ndarray, np.ndarray]:
        if self._value is None:
            self._value = self.component.sparse_scores(self.history)
        return self._value
