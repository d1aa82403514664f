"""Content: the item autoencoder's embedding of an item's attributes, title words and price.

A history is scored by the cosine between each item and the history's content profile (the
weighted mean of its items' unit content vectors). New and changed catalog items get their
embedding from the exported encoder, so this works for items nobody has interacted with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from app.scoring.components.base import ArraySpec, Component
from app.scoring.features import encode_content
from app.scoring.rows import Histories, l2_rows, rows_times_dense


class Content(Component):
    name = "content"
    arrays: ClassVar[dict[str, ArraySpec]] = {
        "content_emb": ("float32", ("n_items", "content_dim")),
        # Item autoencoder's encoder, for catalog items added between trainings.
        "feat_w1": ("float32", ("feature_dim", "content_hidden")),
        "feat_b1": ("float32", ("content_hidden",)),
        "feat_w2": ("float32", ("content_hidden", "content_dim")),
        "feat_b2": ("float32", ("content_dim",)),
    }

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        super().__init__(arrays)
        content = np.asarray(arrays["content_emb"], dtype=np.float32)
        # Unit rows, so a dot product is a cosine similarity.
        self.unit = content / np.maximum(np.linalg.norm(content, axis=1, keepdims=True), 1e-12)

    def profile(self, histories: Histories) -> np.ndarray:
        """(B, content_dim) unit content profile of each history."""
        profile = rows_times_dense(l2_rows(histories), self.unit)
        return profile / np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-12)

    def score(
        self, histories: Histories, prepared: np.ndarray | None = None, items: np.ndarray | None = None
    ) -> np.ndarray:
        unit = self.unit if items is None else self.unit[items]
        return (self.profile(histories) @ unit.T).astype(np.float32, copy=False)

    @classmethod
    def on_catalog_change(
        cls, arrays: dict[str, np.ndarray], *, changed: np.ndarray, new: np.ndarray, features: np.ndarray
    ) -> None:
        if len(changed):
            arrays["content_emb"][changed] = encode_content(features, arrays)
