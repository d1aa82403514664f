"""Batches of histories as CSR rows, and the two sparse products every component needs.

Histories are ``scipy.sparse.csr_matrix`` (offline, batches) or :class:`Rows` (one request:
far cheaper to build) of shape (batch, n_items), float32 event weights.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np


class Histories(Protocol):
    """What scoring reads of a CSR matrix of histories (batch, n_items)."""

    @property
    def indptr(self) -> np.ndarray: ...
    @property
    def indices(self) -> np.ndarray: ...
    @property
    def data(self) -> np.ndarray: ...
    @property
    def shape(self) -> tuple[int, int]: ...


class Rows(NamedTuple):
    """A minimal CSR, cheap to build for a single request."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: tuple[int, int]


def histories_matrix(rows: list[tuple[np.ndarray, np.ndarray]], n_items: int) -> Rows:
    """(len(rows), n_items) CSR from (item_idx, weight) pairs with distinct items per row."""
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(idx) for idx, _ in rows], out=indptr[1:])
    indices = np.concatenate([idx for idx, _ in rows]).astype(np.int32) if rows else np.zeros(0, np.int32)
    data = np.concatenate([w for _, w in rows]).astype(np.float32) if rows else np.zeros(0, np.float32)
    return Rows(indptr, indices, data, (len(rows), n_items))


def l2_rows(matrix: Histories) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, data) of the row-L2-normalised float32 CSR."""
    data = np.asarray(matrix.data, dtype=np.float32)
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=matrix.shape[0]))
    scale = (1.0 / np.maximum(norms, 1e-12)).astype(np.float32)
    return matrix.indptr, matrix.indices, data * scale[rows]


def rows_times_dense(csr: tuple[np.ndarray, np.ndarray, np.ndarray], dense: np.ndarray) -> np.ndarray:
    """(B, n) CSR parts @ (n, d) dense -> (B, d) float32, by gathering the touched rows."""
    indptr, indices, data = csr
    return weighted_sums(indptr, data, np.asarray(dense[indices], dtype=np.float32))


def weighted_sums(indptr: np.ndarray, data: np.ndarray, gathered: np.ndarray) -> np.ndarray:
    """(B, d) float32: each CSR row's ``data``-weighted sum of its rows of ``gathered``
    (one row per stored value). One row (a request's history): a matrix-vector product."""
    batch = len(indptr) - 1
    data = np.asarray(data, dtype=np.float32)
    if batch == 1:
        return (data @ gathered)[None, :].astype(np.float32, copy=False)
    out = np.zeros((batch, gathered.shape[1]), dtype=np.float32)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    if len(nonempty):
        out[nonempty] = np.add.reduceat(gathered * data[:, None], indptr[nonempty], axis=0)
    return out


class ItemRows:
    """Per-item rows of one array: the artifact's (memory-mapped, shared by every worker) and,
    in this process, those of items changed or added since training (an overlay: O(1) per
    change, nothing copied from the base)."""

    def __init__(self, base: np.ndarray) -> None:
        self.base = base
        self.n_base = len(base)
        self._pos: dict[int, int] = {}
        self._rows = np.zeros((16, *base.shape[1:]), dtype=base.dtype)
        self._has = np.zeros(self.n_base + 16, dtype=bool)

    def __len__(self) -> int:
        return max(self.n_base, max(self._pos, default=-1) + 1)

    def set(self, idx: int, row: np.ndarray) -> None:
        if idx >= len(self._has):
            self._has = np.concatenate(
                [self._has, np.zeros(max(idx + 1, 2 * len(self._has)) - len(self._has), bool)]
            )
        if idx not in self._pos:
            if len(self._pos) == len(self._rows):
                self._rows = np.concatenate([self._rows, np.zeros_like(self._rows)])
            self._pos[idx] = len(self._pos)
        self._rows[self._pos[idx]] = row
        self._has[idx] = True

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Rows of the given items (an item past the base with no row: zeros)."""
        idx = np.asarray(idx, dtype=np.int64)
        if not self._pos and (not len(idx) or idx.max() < self.n_base):
            return self.base[idx]  # no overlay: one gather
        inside = idx < self.n_base
        out = np.zeros((len(idx), *self.base.shape[1:]), dtype=self.base.dtype)
        out[inside] = self.base[idx[inside]]
        if self._pos:
            hits = np.flatnonzero(self._has[np.minimum(idx, len(self._has) - 1)] & (idx < len(self._has)))
            for n in hits:
                out[n] = self._rows[self._pos[int(idx[n])]]
        return out

    def dot(self, vectors: np.ndarray, n_items: int) -> np.ndarray:
        """(B, d) vectors @ every row's transpose -> (B, n_items) float32 (exhaustive scoring)."""
        out = np.zeros((vectors.shape[0], n_items), dtype=np.float32)
        out[:, : self.n_base] = vectors @ np.asarray(self.base).T
        for idx, pos in self._pos.items():
            if idx < n_items:
                out[:, idx] = vectors @ self._rows[pos]
        return out

    def values(self, n_items: int) -> np.ndarray:
        """(n_items,) every value of a one-dimensional array (exhaustive scoring)."""
        out = np.zeros(n_items, dtype=self.base.dtype)
        out[: self.n_base] = self.base
        for idx, pos in self._pos.items():
            if idx < n_items:
                out[idx] = self._rows[pos]
        return out
