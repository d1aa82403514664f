"""The recommender: turns ids into indices, chains strategies (personalized blend when there
is a usable history, popularity otherwise), applies exclusions and filters, explains.

Pure numpy over a loaded artifact; no I/O. One instance per artifact version, swapped as a
whole on reload, so a request never sees two versions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np

from app.scoring.artifact import Artifact
from app.scoring.components.content import Content
from app.scoring.components.ease import ItemItem
from app.scoring.components.vae import VAE
from app.scoring.scorer import Scorer, histories_matrix, top_k

T = TypeVar("T")


def _of_type(component: object, kind: type[T]) -> T | None:
    return component if isinstance(component, kind) else None


@dataclass(frozen=True)
class Filters:
    category: frozenset[str] | None = None
    brand: frozenset[str] | None = None
    min_price: float | None = None
    max_price: float | None = None

    @classmethod
    def of(
        cls,
        category: Iterable[str] | None,
        brand: Iterable[str] | None,
        min_price: float | None,
        max_price: float | None,
    ) -> Filters:
        """From request values; an absent or empty list does not filter."""
        return cls(
            category=frozenset(category) if category else None,
            brand=frozenset(brand) if brand else None,
            min_price=min_price,
            max_price=max_price,
        )


class Strategy(StrEnum):
    """What served a recommendation list, and so what its scores mean."""

    personalized = "personalized"  # the blend of the models on the shopper's history
    popular = "popular"  # no usable history: the most popular items


class SimilarBy(StrEnum):
    collaborative = "collaborative"  # decoder item embeddings (filled from content for new items)
    content = "content"  # item autoencoder embeddings of the attributes


@dataclass
class Recommendation:
    item_idx: np.ndarray  # (n,) int, best first
    scores: np.ndarray  # (n,) float32
    strategy: Strategy
    unknown_items: list[str] = field(default_factory=list)
    because: list[list[str]] | None = None


class Recommender:
    def __init__(self, loaded: Artifact) -> None:
        self.artifact = loaded
        self.version = loaded.version
        manifest = loaded.manifest
        self.scorer = Scorer(loaded.arrays, manifest.blend_weights, manifest.components)
        self.event_weights: dict[str, float] = manifest.events.weights
        self.rating_threshold: float = manifest.events.rating_threshold
        self.items = loaded.items
        self.item_index = {item["item_id"]: i for i, item in enumerate(loaded.items)}
        self.user_index = {user: u for u, user in enumerate(loaded.users)}
        self.n_items = len(loaded.items)
        self.category = np.array([i.get("category") for i in loaded.items], dtype=object)
        self.brand = np.array([i.get("brand") for i in loaded.items], dtype=object)
        # float64, as the catalog and the filter bounds: in float32, max_price=2.7299999 would
        # let through an item priced 2.73 (both round to the same float32).
        self.price = np.array(
            [np.nan if i.get("price") is None else i["price"] for i in loaded.items],
            dtype=np.float64,
        )
        self.popularity = np.asarray(loaded.arrays["popularity"], dtype=np.float32)
        self.available = np.array([i.get("available", True) is not False for i in loaded.items])
        a = loaded.arrays
        components = self.scorer.components
        self._item_item = _of_type(components.get("ease"), ItemItem)
        self._content = _of_type(components.get("content"), Content)
        vae = _of_type(components.get("vae"), VAE)
        self._user_emb = a["user_emb"] if vae is not None else None
        emb = vae.item_vectors() if vae is not None else np.zeros((self.n_items, 1), np.float32)
        self._cf_unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        self._user_indptr, self._user_items = a["user_indptr"], a["user_items"]
        self._user_weights = a["user_weights"]

    # -- histories ---------------------------------------------------------------------
    def training_history(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(item_idx int32, weight float32) of a known user's training history."""
        u = self.user_index.get(user_id)
        if u is None:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        start, end = self._user_indptr[u], self._user_indptr[u + 1]
        return np.asarray(self._user_items[start:end]), np.asarray(self._user_weights[start:end])

    def stored_user_vector(self, user_id: str) -> np.ndarray | None:
        """The VAE user vector precomputed from a known user's training history (valid only
        while no live event has been added to that history); None when there is none."""
        u = self.user_index.get(user_id)
        if u is None or self._user_emb is None:
            return None
        return np.asarray(self._user_emb[u])

    def resolve(self, weighted_ids: Iterable[tuple[str, float]]) -> tuple[dict[int, float], list[str]]:
        """Map ids to indices keeping the strongest weight per item; collect unknown ids.

        Weight 0 (e.g. a 1-star rating) keeps the item as seen, without signal.
        """
        history: dict[int, float] = {}
        unknown: list[str] = []
        for item_id, weight in weighted_ids:
            idx = self.item_index.get(item_id)
            if idx is None:
                if item_id not in unknown:
                    unknown.append(item_id)
            else:
                history[idx] = max(weight, history.get(idx, 0.0))
        return history, unknown

    # -- recommendation ------------------------------------------------------------------
    def recommend(
        self,
        history: dict[int, float],
        *,
        k: int,
        exclude: Iterable[int] = (),
        filters: Filters | None = None,
        explain: bool = False,
        user_vector: np.ndarray | None = None,
    ) -> Recommendation:
        """Top-k for a history {item_idx: weight}, never an item of ``exclude`` (the caller's
        whole exclusion set: app.scoring.history says which history items it holds).

        Weight-0 items carry no signal; no positive weight -> popularity. ``user_vector``:
        the stored (hidden,) fold-in of exactly this history, saving the encoder pass.
        """
        mask = ~self.eligible(filters)
        mask[list(exclude)] = True
        positive = {i: w for i, w in history.items() if w > 0}
        if positive:
            idx = np.fromiter(positive.keys(), dtype=np.int32, count=len(positive))
            weights = np.fromiter(positive.values(), dtype=np.float32, count=len(positive))
            matrix = histories_matrix([(idx, weights)], self.n_items)
            prepared = None if user_vector is None else {"vae": user_vector[None, :]}
            scores = self.scorer.score(matrix, prepared=prepared)
            strategy = Strategy.personalized
        else:
            scores = self.popularity[None, :].copy()
            strategy = Strategy.popular
        ranked = top_k(scores, k, exclude=mask[None, :])[0]
        ranked = ranked[ranked >= 0]
        result = Recommendation(ranked, scores[0, ranked], strategy)
        if explain and positive:
            result.because = self.explain(ranked, positive)
        return result

    def eligible(self, filters: Filters | None) -> np.ndarray:
        """(n_items,) bool: available and matching every filter."""
        ok = self.available.copy()
        if filters is None:
            return ok
        if filters.category is not None:
            ok &= np.isin(self.category, list(filters.category))
        if filters.brand is not None:
            ok &= np.isin(self.brand, list(filters.brand))
        if filters.min_price is not None:
            ok &= self.price >= filters.min_price  # unknown price (NaN) never matches
        if filters.max_price is not None:
            ok &= self.price <= filters.max_price
        return ok

    def explain(self, ranked: np.ndarray, history: dict[int, float], top: int = 3) -> list[list[str]]:
        """Per recommended item, the history items with the largest EASE contribution
        h_i * B[i, j]; when none is positive, the most content-similar history item."""
        idx = np.fromiter(history.keys(), dtype=np.int32)
        weights = np.fromiter(history.values(), dtype=np.float32)
        contrib = np.zeros((len(idx), len(ranked)), np.float32)  # (h, n)
        if self._item_item is not None:
            contrib = self._item_item.matrix[idx][:, ranked].toarray() * weights[:, None]
        vectors = self._content.unit if self._content is not None else self._cf_unit
        similarity = vectors[idx] @ vectors[ranked].T  # (h, n)
        out = []
        for column in range(len(ranked)):
            order = np.argsort(-contrib[:, column])[:top]
            chosen = [idx[i] for i in order if contrib[i, column] > 0]
            if not chosen:
                chosen = [idx[int(np.argmax(similarity[:, column]))]]
            out.append([self.items[i]["item_id"] for i in chosen])
        return out

    def similar(self, item_idx: int, *, k: int, by: SimilarBy) -> tuple[np.ndarray, np.ndarray]:
        """Items most similar to one item: collaborative (cosine of decoder embeddings,
        which the content map fills for cold items) or content (item autoencoder)."""
        content = self._content if by == SimilarBy.content else None
        vectors = content.unit if content is not None else self._cf_unit
        scores = (vectors @ vectors[item_idx])[None, :].astype(np.float32)
        mask = ~self.available.copy()
        mask[item_idx] = True
        ranked = top_k(scores, k, exclude=mask[None, :])[0]
        ranked = ranked[ranked >= 0]
        return ranked, scores[0, ranked]

    def item_view(self, idx: int) -> dict[str, Any]:
        item = self.items[idx]
        return {
            "item_id": item["item_id"],
            "title": item.get("title"),
            "category": item.get("category"),
            "brand": item.get("brand"),
            "price": item.get("price"),
        }
