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
    batch = len(indptr) - 1
    gathered = np.asarray(dense[indices], dtype=np.float32) * data[:, None]
    out = np.zeros((batch, dense.shape[1]), dtype=np.float32)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    if len(nonempty):
        out[nonempty] = np.add.reduceat(gathered, indptr[nonempty], axis=0)
    return out
