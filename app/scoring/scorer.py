"""Numpy scoring: fold a history into the Mult-VAE encoder, score every item with the
VAE decoder, EASE and the item-content profile, blend, mask, top-k.

This is the one scoring path: the API calls it for one user, ``scripts/evaluate.py`` and
training's blend search call it for batches. Histories are ``scipy.sparse.csr_matrix``
of shape (batch, n_items), float32 event weights. Everything stays float32.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

COMPONENTS = ("vae", "ease", "content")


class Scorer:
    """Holds the artifact's arrays (memory-mapped or in memory) and scores histories."""

    def __init__(self, arrays: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> None:
        self.arrays = arrays
        self.weights = {name: float(weights.get(name, 0.0)) for name in COMPONENTS}
        n_items = arrays["item_emb"].shape[0]
        self.n_items = n_items
        self.ease = sp.csr_matrix(
            (arrays["ease_data"], arrays["ease_indices"], arrays["ease_indptr"]),
            shape=(n_items, n_items),
        )
        self._ease_parts = (
            np.asarray(arrays["ease_indptr"]),
            np.asarray(arrays["ease_indices"]),
            np.asarray(arrays["ease_data"]),
        )
        content = np.asarray(arrays["content_emb"], dtype=np.float32)
        norms = np.linalg.norm(content, axis=1, keepdims=True)
        # Unit rows, so a dot product is a cosine similarity.
        self.content_unit = content / np.maximum(norms, 1e-12)

    def user_vectors(self, histories: sp.csr_matrix) -> np.ndarray:
        """Mult-VAE fold-in with the posterior mean (never a sample).

        histories: (B, n_items) float32 CSR. Returns (B, hidden) float32 decoder activations.
        """
        a = self.arrays
        h = np.tanh(_rows_times_dense(_l2_rows(histories), a["enc_w1"]) + a["enc_b1"])
        mu = h @ a["enc_wmu"] + a["enc_bmu"]
        return np.tanh(mu @ a["dec_w1"] + a["dec_b1"]).astype(np.float32, copy=False)

    def vae_scores(self, user_vectors: np.ndarray) -> np.ndarray:
        """(B, hidden) -> (B, n_items) logits of the multinomial decoder."""
        return user_vectors @ self.arrays["item_emb"].T + self.arrays["item_bias"]

    def components(
        self,
        histories: sp.csr_matrix,
        *,
        user_vectors: np.ndarray | None = None,
        only: tuple[str, ...] = COMPONENTS,
    ) -> dict[str, np.ndarray]:
        """Raw scores of each component, each (B, n_items) float32."""
        out: dict[str, np.ndarray] = {}
        if "vae" in only:
            vectors = self.user_vectors(histories) if user_vectors is None else user_vectors
            out["vae"] = self.vae_scores(vectors)
        if "ease" in only:
            out["ease"] = self._ease_scores(histories)
        if "content" in only:
            profile = _rows_times_dense(_l2_rows(histories), self.content_unit)
            profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-12)
            out["content"] = profile @ self.content_unit.T
        return out

    def _ease_scores(self, histories: sp.csr_matrix) -> np.ndarray:
        """histories @ B, accumulated with one bincount (no sparse-matrix objects: their
        construction dominates a one-user request)."""
        indptr, indices, data = self._ease_parts
        batch = histories.shape[0]
        rows = np.repeat(np.arange(batch), np.diff(histories.indptr))
        starts, ends = indptr[histories.indices], indptr[histories.indices + 1]
        lengths = ends - starts
        # Positions of every neighbour of every history item, concatenated.
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        flat = np.repeat(rows * self.n_items, lengths) + indices[offsets]
        weights = np.repeat(histories.data, lengths) * data[offsets]
        scores = np.bincount(flat, weights=weights, minlength=batch * self.n_items)
        return scores.reshape(batch, self.n_items).astype(np.float32)

    def score(
        self,
        histories: sp.csr_matrix,
        *,
        weights: Mapping[str, float] | None = None,
        user_vectors: np.ndarray | None = None,
    ) -> np.ndarray:
        """Blended scores (B, n_items): sum of w_c * per-user standardised component c."""
        weights = self.weights if weights is None else weights
        used = tuple(name for name in COMPONENTS if weights.get(name, 0.0) != 0.0)
        parts = self.components(histories, user_vectors=user_vectors, only=used)
        return blend(parts, weights, batch=histories.shape[0], n_items=self.n_items)


def blend(
    parts: Mapping[str, np.ndarray], weights: Mapping[str, float], *, batch: int, n_items: int
) -> np.ndarray:
    """Weighted sum of row-standardised score matrices; scales differ across components."""
    total = np.zeros((batch, n_items), dtype=np.float32)
    for name, scores in parts.items():
        weight = np.float32(weights.get(name, 0.0))
        if weight:
            total += weight * standardise(scores)
    return total


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-score, float32; constant rows become zeros."""
    mean = scores.mean(axis=1, keepdims=True, dtype=np.float32)
    std = scores.std(axis=1, keepdims=True, dtype=np.float32)
    return ((scores - mean) / np.maximum(std, np.float32(1e-12))).astype(np.float32, copy=False)


def top_k(scores: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k best items per row, best first.

    scores: (B, n_items) float32 (modified in place where ``exclude`` is true: -inf).
    exclude: (B, n_items) bool, or None. Excluded items are never returned; rows with
    fewer than k eligible items return fewer (the result is then padded with -1).
    """
    if exclude is not None:
        scores[exclude] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1, kind="stable")[:, ::-1]
    ranked = np.take_along_axis(part, order, axis=1)
    if exclude is not None:
        ranked = np.where(np.isneginf(np.take_along_axis(scores, ranked, axis=1)), -1, ranked)
    return ranked


class Rows(NamedTuple):
    """A minimal CSR (what the scorer reads of ``scipy.sparse.csr_matrix``), cheap to build
    for a single request."""

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


def _l2_rows(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, data) of the row-L2-normalised float32 CSR."""
    data = np.asarray(matrix.data, dtype=np.float32)
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=matrix.shape[0]))
    scale = (1.0 / np.maximum(norms, 1e-12)).astype(np.float32)
    return matrix.indptr, matrix.indices, data * scale[rows]


def _rows_times_dense(csr: tuple[np.ndarray, np.ndarray, np.ndarray], dense: np.ndarray) -> np.ndarray:
    """(B, n) CSR parts @ (n, d) dense -> (B, d) float32, by gathering the touched rows."""
    indptr, indices, data = csr
    batch = len(indptr) - 1
    gathered = np.asarray(dense[indices], dtype=np.float32) * data[:, None]
    out = np.zeros((batch, dense.shape[1]), dtype=np.float32)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    if len(nonempty):
        out[nonempty] = np.add.reduceat(gathered, indptr[nonempty], axis=0)
    return out
