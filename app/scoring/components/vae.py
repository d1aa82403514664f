"""Mult-VAE (Liang et al. 2018) in numpy: fold a history into the encoder with the posterior
mean (never a sample), score items with the multinomial decoder, logits = u e_i + b_i.

Retrieval searches the decoder rows [e_i | b_i] with the query [u | 1] (maximum inner
product). A new catalog item gets a decoder row (embedding and bias) from the ridge map of its
item features (the cold-start path) and no encoder row: it can be recommended at once, and
counts in a history after the next training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from app.scoring.ann import BoundedHead, ExactIndex, best, distinct, scan_many
from app.scoring.components.base import ArraySpec, Component, LinearMoments, sample_items
from app.scoring.features import content_to_cf
from app.scoring.rows import Histories, ItemRows, l2_rows, rows_times_dense


class BiasedExact:
    """Exact maximum inner product: every item's u e_i + b_i."""

    def __init__(self, emb: np.ndarray, bias: np.ndarray) -> None:
        self.emb, self.bias = emb, bias

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        u, one = query[:-1], query[-1]
        if allowed is not None:
            return allowed[best(np.asarray(self.emb[allowed]) @ u + one * self.bias[allowed], n)]
        return best(np.asarray(self.emb) @ u + one * np.asarray(self.bias), n).astype(np.int64)

    def bounded_head(self, items: np.ndarray) -> BoundedHead:
        """The exact search of these items (an IVF index's head) with a bound (app.scoring.ann)."""
        return BoundedHead(self.emb, self.bias, items)

    def search_many(self, queries: np.ndarray, n: int) -> np.ndarray:
        emb, bias = np.asarray(self.emb), np.asarray(self.bias)
        return scan_many(lambda q: q[:, :-1] @ emb.T + q[:, -1:] * bias, queries, n, len(emb))


class VAE(Component):
    name = "vae"
    index_names = ("mips", "cosine")  # retrieval by decoder score; similar items by cosine
    head_indexes = ("mips",)  # u e + b: the bias favours popular items
    arrays: ClassVar[dict[str, ArraySpec]] = {
        # Encoder (fold-in): x -> tanh(x W1 + b1) -> mu = h Wmu + bmu.
        "enc_w1": ("float32", ("n_items", "hidden")),
        "enc_b1": ("float32", ("hidden",)),
        "enc_wmu": ("float32", ("hidden", "latent")),
        "enc_bmu": ("float32", ("latent",)),
        # Decoder: user vector u = tanh(mu Dw + Db); logits = u item_emb^T + item_bias.
        "dec_w1": ("float32", ("latent", "hidden")),
        "dec_b1": ("float32", ("hidden",)),
        "item_emb": ("float32", ("n_items", "hidden")),
        "item_bias": ("float32", ("n_items",)),
        "item_norm": ("float32", ("n_items",)),  # |e_i|, for cosine similarity of items
        # Ridge map [item features, 1] -> [item_emb, item_bias] (cold start).
        "content_to_cf": ("float32", ("feature_dim_bias", "hidden_bias")),
        # Known users' user vectors, precomputed from their training histories.
        "user_emb": ("float32", ("n_users", "hidden")),
    }

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        super().__init__(arrays)
        # Plain views of the mapped files: np.memmap's own indexing costs ~0.1 ms per call.
        self.a = {name: np.asarray(arrays[name]) for name in self.arrays}
        self.emb = ItemRows(self.a["item_emb"])
        self.bias = ItemRows(self.a["item_bias"])
        # Queries like the requests': the stored user vectors (item rows if there are none).
        users = self.a["user_emb"] if len(self.a["user_emb"]) else None
        self.linear = LinearMoments(self.a["item_emb"], self.a["item_bias"], queries=users)
        self.indexes["mips"] = BiasedExact(self.a["item_emb"], self.a["item_bias"])
        self.indexes["cosine"] = ExactIndex(self.a["item_emb"], self.a["item_norm"])

    def index_vectors(self, name: str) -> np.ndarray:
        emb = self.a["item_emb"]
        if name == "mips":  # u e + b = [u | 1] . [e | b]
            return np.hstack([emb, self.a["item_bias"][:, None]])
        return emb / np.maximum(self.a["item_norm"], np.float32(1e-12))[:, None]

    def index_queries(self, name: str, n: int) -> np.ndarray:
        if name != "mips" or not len(self.a["user_emb"]):
            return super().index_queries(name, n)
        users = np.asarray(self.a["user_emb"][sample_items(len(self.a["user_emb"]), n)], dtype=np.float32)
        return np.hstack([users, np.ones((len(users), 1), np.float32)])  # [u | 1]

    def prepare(self, histories: Histories) -> np.ndarray:
        """(B, hidden) float32 user vectors: the decoder's hidden activations. Items past the
        artifact's (added since training) have no encoder row and do not count."""
        a = self.a
        indptr, indices, data = l2_rows(histories)
        if len(indices) and indices.max() >= self.n_base:
            data = np.where(indices < self.n_base, data, 0.0).astype(np.float32)
            indices = np.minimum(indices, self.n_base - 1)
        h = np.tanh(rows_times_dense((indptr, indices, data), a["enc_w1"]) + a["enc_b1"])
        mu = h @ a["enc_wmu"] + a["enc_bmu"]
        return np.tanh(mu @ a["dec_w1"] + a["dec_b1"]).astype(np.float32, copy=False)

    def score(
        self, histories: Histories, prepared: Any = None, items: np.ndarray | None = None
    ) -> np.ndarray:
        vectors = self.prepare(histories) if prepared is None else prepared
        if items is None:
            return self.emb.dot(vectors, self.n_items) + self.bias.values(self.n_items)
        return (vectors @ self.emb.take(items).T + self.bias.take(items)).astype(np.float32, copy=False)

    def warm(self) -> None:
        self.linear.stats()

    def moments(self, histories: Histories, prepared: Any = None) -> tuple[np.ndarray, np.ndarray]:
        vectors = self.prepare(histories) if prepared is None else prepared
        return self.linear(np.hstack([vectors, np.ones((len(vectors), 1), vectors.dtype)]))

    def candidates(self, history: Histories, prepared: Any, n: int, allowed: np.ndarray | None) -> np.ndarray:
        u = (self.prepare(history) if prepared is None else prepared)[0]
        base_allowed = None if allowed is None else allowed[allowed < self.n_base]
        found = self.indexes["mips"].search(np.append(u, np.float32(1.0)), n, base_allowed)
        extra = np.array(sorted(self.emb._pos), dtype=np.int64)
        if allowed is not None:
            extra = extra[np.isin(extra, allowed)]
        if not len(extra):
            return found
        pool = distinct(found, extra)
        return pool[best(self.emb.take(pool) @ u + self.bias.take(pool), n)]

    def candidates_many(self, histories: Histories, prepared: Any, n: int) -> list[np.ndarray] | None:
        index = self.indexes["mips"]
        if self.emb._pos or not hasattr(index, "search_many"):
            return None
        u = self.prepare(histories) if prepared is None else prepared
        return list(index.search_many(np.hstack([u, np.ones((len(u), 1), u.dtype)]), n))

    def similar(self, item_idx: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(items, cosine) of the ``n`` decoder embeddings closest to one item's, best first:
        the index over the artifact's rows, plus the rows of new items, scanned exactly."""
        query = self.emb.take(np.array([item_idx]))[0]
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        found = self.indexes["cosine"].search(query, n)
        pool = distinct(found, np.fromiter(self.emb._pos, dtype=np.int64))
        rows = self.emb.take(pool)
        scores = rows @ query / np.maximum(np.linalg.norm(rows, axis=1), 1e-12)
        order = best(scores, n)
        return pool[order], scores[order].astype(np.float32)

    def item_vectors(self, items: np.ndarray) -> np.ndarray:
        """(len(items), hidden) decoder embeddings: the collaborative item space."""
        return self.emb.take(items)

    def apply_changes(
        self,
        *,
        changed: np.ndarray,
        new: np.ndarray,
        features: np.ndarray,
        components: Mapping[str, Component],
    ) -> None:
        super().apply_changes(changed=changed, new=new, features=features, components=components)
        if len(new):
            emb, bias = content_to_cf(features[np.searchsorted(changed, new)], self.a)
            for idx, e, b in zip(new, emb, bias, strict=True):
                self.emb.set(int(idx), e)
                self.bias.set(int(idx), b)
