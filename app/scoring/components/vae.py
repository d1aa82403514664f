"""Mult-VAE (Liang et al. 2018) in numpy: fold a history into the encoder with the posterior
mean (never a sample), score every item with the multinomial decoder.

A new catalog item gets a decoder row (embedding and bias) from the ridge map of its content
embedding (the cold-start path) and a zero encoder row: it can be recommended at once, and
counts in a history after the next training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from app.scoring.components.base import ArraySpec, Component
from app.scoring.features import content_to_cf
from app.scoring.rows import Histories, l2_rows, rows_times_dense


class VAE(Component):
    name = "vae"
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
        # Ridge map [content embedding, 1] -> [item_emb, item_bias] (cold start).
        "content_to_cf": ("float32", ("content_dim_bias", "hidden_bias")),
        # Known users' user vectors, precomputed from their training histories.
        "user_emb": ("float32", ("n_users", "hidden")),
    }

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        super().__init__(arrays)
        self.a = arrays

    def prepare(self, histories: Histories) -> np.ndarray:
        """(B, hidden) float32 user vectors: the decoder's hidden activations."""
        a = self.a
        h = np.tanh(rows_times_dense(l2_rows(histories), a["enc_w1"]) + a["enc_b1"])
        mu = h @ a["enc_wmu"] + a["enc_bmu"]
        return np.tanh(mu @ a["dec_w1"] + a["dec_b1"]).astype(np.float32, copy=False)

    def score(
        self, histories: Histories, prepared: np.ndarray | None = None, items: np.ndarray | None = None
    ) -> np.ndarray:
        vectors = self.prepare(histories) if prepared is None else prepared
        if items is None:
            return vectors @ self.a["item_emb"].T + self.a["item_bias"]
        return vectors @ self.a["item_emb"][items].T + self.a["item_bias"][items]

    def item_vectors(self) -> np.ndarray:
        """(n_items, hidden) decoder embeddings: the collaborative item space."""
        return np.asarray(self.a["item_emb"])

    @classmethod
    def on_catalog_change(
        cls, arrays: dict[str, np.ndarray], *, changed: np.ndarray, new: np.ndarray, features: np.ndarray
    ) -> None:
        if len(new):
            emb, bias = content_to_cf(arrays["content_emb"][new], arrays)
            arrays["item_emb"][new], arrays["item_bias"][new] = emb, bias
