"""Content: the item autoencoder's embedding of an item's attributes, title words and price,
stored unit-length, so a dot product is a cosine.

A history is scored by the cosine between each item and the history's content profile (the
weighted mean of its items' content vectors). New and changed catalog items get their
embedding from the exported encoder, so this works for items nobody has interacted with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from app.scoring.ann import DistinctRowsIndex, best, distinct
from app.scoring.components.base import ArraySpec, Component, LinearMoments
from app.scoring.features import encode_content
from app.scoring.rows import Histories, ItemRows, l2_rows, weighted_sums


class Content(Component):
    name = "content"
    index_names = ("content",)
    arrays: ClassVar[dict[str, ArraySpec]] = {
        "content_emb": ("float32", ("n_items", "content_dim")),  # unit rows
        # Item autoencoder's encoder, for catalog items added between trainings.
        "feat_w1": ("float32", ("feature_dim", "content_hidden")),
        "feat_b1": ("float32", ("content_hidden",)),
        "feat_w2": ("float32", ("content_hidden", "content_dim")),
        "feat_b2": ("float32", ("content_dim",)),
    }

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        super().__init__(arrays)
        self.a = arrays
        content = np.asarray(arrays["content_emb"])  # a plain view of the mapped file: fast indexing
        self.unit = ItemRows(content)
        self.indexes["content"] = DistinctRowsIndex(content)  # items of equal attributes: one row
        self.linear = LinearMoments(content)

    def index_vectors(self, name: str) -> np.ndarray:
        return np.asarray(self.a["content_emb"])

    def prepare(self, histories: Histories) -> np.ndarray:
        return self.profile(histories)

    def profile(self, histories: Histories) -> np.ndarray:
        """(B, content_dim) unit content profile of each history."""
        indptr, indices, data = l2_rows(histories)
        out = weighted_sums(indptr, data, self.unit.take(indices))
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def score(
        self, histories: Histories, prepared: Any = None, items: np.ndarray | None = None
    ) -> np.ndarray:
        profile = self.profile(histories) if prepared is None else prepared
        if items is None:
            return self.unit.dot(profile, self.n_items)
        return (profile @ self.unit.take(items).T).astype(np.float32, copy=False)

    def warm(self) -> None:
        self.linear.stats()
        index = self.indexes["content"]
        if isinstance(index, DistinctRowsIndex):  # not once an approximate index replaced it
            index.warm()

    def moments(self, histories: Histories, prepared: Any = None) -> tuple[np.ndarray, np.ndarray]:
        return self.linear(self.profile(histories) if prepared is None else prepared)

    def candidates(self, history: Histories, prepared: Any, n: int, allowed: np.ndarray | None) -> np.ndarray:
        profile = self.profile(history) if prepared is None else prepared
        return self.nearest(profile[0], n, allowed)

    def candidates_many(self, histories: Histories, prepared: Any, n: int) -> list[np.ndarray] | None:
        index = self.indexes["content"]
        if self.unit._pos or not hasattr(index, "search_many"):
            return None
        return list(index.search_many(self.profile(histories) if prepared is None else prepared, n))

    def nearest(self, vector: np.ndarray, n: int, allowed: np.ndarray | None) -> np.ndarray:
        """Items whose content is closest (cosine) to a unit ``vector``: the index over the
        artifact's items, plus the rows of changed and new items, scanned exactly."""
        base_allowed = None if allowed is None else allowed[allowed < self.n_base]
        found = self.indexes["content"].search(vector, n, base_allowed)
        extra = np.array(sorted(self.unit._pos), dtype=np.int64)
        if allowed is not None:
            extra = extra[np.isin(extra, allowed)]
        if not len(extra):
            return found
        pool = distinct(found, extra)
        return pool[best(self.unit.take(pool) @ vector, n)]

    def apply_changes(
        self,
        *,
        changed: np.ndarray,
        new: np.ndarray,
        features: np.ndarray,
        components: Mapping[str, Component],
    ) -> None:
        super().apply_changes(changed=changed, new=new, features=features, components=components)
        if len(changed):
            codes = encode_content(features, self.a)
            codes /= np.maximum(np.linalg.norm(codes, axis=1, keepdims=True), 1e-12)
            for idx, row in zip(changed, codes, strict=True):
                self.unit.set(int(idx), row)
