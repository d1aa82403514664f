"""The recommender: turns ids into indices, chains strategies (personalized blend when there
is a usable history, popularity otherwise), applies exclusions and filters, explains.

Two ways to score, chosen by the manifest's ``retrieval.mode`` (training's configuration):
``exhaustive`` scores every item with every component and standardises over the catalog;
``two_stage`` retrieves a bounded candidate set (app.scoring.retrieval) and scores only the
candidates, standardised over them, so a request's cost does not grow with the catalog.

Pure numpy over a loaded artifact; no I/O. One instance per artifact version, swapped as a
whole on reload, so a request never sees two versions; catalog changes are applied to it in
place (O(1) per change, on the event loop, between requests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np

from app.scoring import ann
from app.scoring import catalog as catalog_files
from app.scoring.ann import best
from app.scoring.artifact import Artifact
from app.scoring.catalog import Catalog, Filters
from app.scoring.components.content import Content
from app.scoring.components.ease import ItemItem
from app.scoring.components.vae import VAE
from app.scoring.features import FeatureSpace
from app.scoring.rerank import Rerank, factors, pool_size, relevance_scale
from app.scoring.rerank import order as rerank_order
from app.scoring.retrieval import Pools, candidates, popular_passing
from app.scoring.scorer import Scorer, histories_matrix, top_k

__all__ = ["Explore", "Filters", "Recommendation", "Recommender", "Rerank", "SimilarBy", "Strategy"]

T = TypeVar("T")
Personal = tuple[Any, dict[str, Any]]  # a history matrix and the components' prepared state


def _of_type(component: object, kind: type[T]) -> T | None:
    return component if isinstance(component, kind) else None


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
    explored: np.ndarray | None = None  # (n,) bool: an exploration slot (None: no exploration)


@dataclass(frozen=True)
class Explore:
    """Exploration slots: ``share`` of the k go to items with little exposure (at most
    ``max_popularity`` training shoppers, or added to the catalog since training) that have
    not been shown ``saturated`` enough times, the best of a random ``sample`` of them by the
    collaborative score (new items have one from their attributes: the content->CF map)."""

    share: float
    max_popularity: float = 2
    saturated: frozenset[int] = frozenset()
    sample: int = 2000
    seed: int | None = None

    def slots(self, k: int) -> int:
        return min(k, int(self.share * k + 0.5)) if self.share > 0 else 0


class Recommender:
    def __init__(self, loaded: Artifact, *, mode: str | None = None, pools: Pools | None = None) -> None:
        """mode (``exhaustive`` or ``two_stage``) and pools override the manifest's retrieval
        settings (evaluation, tests)."""
        self.artifact = loaded
        self.version = loaded.version
        manifest = loaded.manifest
        self.scorer = Scorer(loaded.arrays, manifest.blend_weights, manifest.components)
        self.event_weights: dict[str, float] = manifest.events.weights
        self.rating_threshold: float = manifest.events.rating_threshold
        self.catalog = Catalog(loaded.arrays, loaded.vocab)
        self.space = FeatureSpace.from_dict(manifest.feature_space)
        retrieval = manifest.retrieval
        self.mode = mode or retrieval.mode
        self.pools = pools or Pools(**retrieval.pools)
        a = loaded.arrays
        self._popularity = a["popularity"]
        self.popular_order = a["popular_order"]
        components = self.scorer.components
        lowrank = None if retrieval.lowrank is None else ann.LowRankSettings(**retrieval.lowrank.model_dump())
        if retrieval.ann is not None:  # large artifacts: approximate indexes, memory-mapped
            ivf = ann.IVFSettings(**retrieval.ann.model_dump())
            ann.attach(components, loaded.path, ivf, self.popular_order, lowrank, manifest.sizes)
        elif lowrank is not None:  # mid-size artifacts: shortlisted exact scans
            ann.attach_lowrank(components, loaded.path, lowrank, manifest.sizes)
        if self.mode == "two_stage":
            self.scorer.warm()
        self._item_item = _of_type(components.get("ease"), ItemItem)
        self._content = _of_type(components.get("content"), Content)
        self._vae = _of_type(components.get("vae"), VAE)
        self._user_indptr, self._user_items = a["user_indptr"], a["user_items"]
        self._user_weights = a["user_weights"]
        self.catalog_entries: dict[str, dict[str, Any] | None] = {}  # the changes applied
        self._low_exposure: dict[float, np.ndarray] = {}
        self._indices_of: tuple[frozenset[str], int, frozenset[int]] | None = None

    @property
    def n_items(self) -> int:
        return self.catalog.n_items

    def popularity(self, idx: int) -> float:
        return float(self._popularity[idx]) if idx < self.catalog.n_base else 0.0

    # -- ids and histories ------------------------------------------------------------------
    def index_of(self, item_id: str) -> int | None:
        return self.catalog.index_of(item_id)

    def item_id(self, idx: int) -> str:
        return self.catalog.item_id(idx)

    def user_index(self, user_id: str) -> int | None:
        a = self.artifact.arrays
        u = int(catalog_files.lookup(a["user_ids_sorted"], a["user_id_order"], [user_id])[0])
        return u if u >= 0 else None

    def training_history(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(item_idx int32, weight float32) of a known user's training history."""
        u = self.user_index(user_id)
        if u is None:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        start, end = self._user_indptr[u], self._user_indptr[u + 1]
        return np.asarray(self._user_items[start:end]), np.asarray(self._user_weights[start:end])

    def resolve(self, weighted_ids: Iterable[tuple[str, float]]) -> tuple[dict[int, float], list[str]]:
        """Map ids to indices keeping the strongest weight per item; collect unknown ids.
        Weight 0 (e.g. a 1-star rating) keeps the item as seen, without signal."""
        pairs = list(weighted_ids)
        found = self.known_ids([item for item, _ in pairs]).tolist() if pairs else []
        history: dict[int, float] = {}
        unknown: list[str] = []
        for (item_id, weight), idx in zip(pairs, found, strict=True):
            if idx < 0:
                if item_id not in unknown:
                    unknown.append(item_id)
            else:
                history[idx] = max(weight, history.get(idx, 0.0))
        return history, unknown

    def stored_user_vector(self, user_id: str) -> np.ndarray | None:
        """The VAE user vector precomputed from a known user's training history (valid only
        while no live event has been added to that history); None when there is none."""
        u = self.user_index(user_id)
        if u is None or self._vae is None:
            return None
        return np.asarray(self.artifact.arrays["user_emb"][u])

    # -- catalog changes --------------------------------------------------------------------
    def apply_changes(self, updates: Mapping[str, dict[str, Any] | None]) -> None:
        """Catalog changes since training (item_id -> entry, None = deleted), in place."""
        self.catalog_entries.update(updates)
        changed, new = self.catalog.apply(updates)
        if len(changed):
            features = self.space.encode([self.catalog.record(int(i)) for i in changed])
            self.scorer.apply_changes(changed=changed, new=new, features=features)

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
        weights: Mapping[str, float] | None = None,
        rerank: Rerank | None = None,
        explore: Explore | None = None,
    ) -> Recommendation:
        """Top-k for a history {item_idx: weight}, never an item of ``exclude`` (the caller's
        whole exclusion set: app.scoring.history says which history items it holds).

        Weight-0 items carry no signal; no positive weight -> popularity. ``user_vector``:
        the stored (hidden,) fold-in of exactly this history, saving the encoder pass.
        ``weights``: blend weights other than the artifact's (offline, per component).
        ``rerank``: diversity and business rules over the best items (app.scoring.rerank);
        the scores stay each item's relevance. ``explore``: exploration slots, spread over
        the list (``Recommendation.explored`` marks them)."""
        excluded = set(exclude)
        positive = {i: w for i, w in history.items() if w > 0}
        final_k = k
        if rerank is not None and rerank.active:
            k = pool_size(k)
        if not positive:
            ranked = popular_passing(self.catalog, self.popular_order, k, filters, excluded)
            scores = np.array([self.popularity(int(i)) for i in ranked], dtype=np.float32)
            ranked, scores = self._rerank(ranked, scores, final_k, rerank)
            result = Recommendation(ranked, scores, Strategy.popular)
            return self._explore(result, final_k, explore, excluded, filters, None)
        idx = np.fromiter(positive.keys(), dtype=np.int32, count=len(positive))
        values = np.fromiter(positive.values(), dtype=np.float32, count=len(positive))
        matrix = histories_matrix([(idx, values)], self.n_items)
        prepared = self.scorer.prepare(
            matrix, {"vae": user_vector[None, :]} if user_vector is not None else None
        )
        if self.mode == "exhaustive":
            ranked, scores = self._exhaustive(matrix, k, excluded, filters, prepared, weights)
        else:
            pool = candidates(
                self.scorer,
                self.catalog,
                self.popular_order,
                matrix,
                prepared=prepared,
                k=k,
                exclude=excluded,
                filters=filters,
                pools=self.pools,
            )
            if len(pool):
                blended = self.scorer.score_items(matrix, pool, weights=weights, prepared=prepared)[0]
                order = best(blended, k)
                ranked, scores = pool[order], blended[order]
            else:  # nothing passes the filter
                ranked, scores = pool, np.zeros(0, np.float32)
        ranked, scores = self._rerank(ranked, scores, final_k, rerank)
        result = Recommendation(ranked, scores, Strategy.personalized)
        result = self._explore(result, final_k, explore, excluded, filters, (matrix, prepared))
        if explain:
            result.because = self.explain(ranked, positive)
        return result

    def _exhaustive(
        self,
        matrix: Any,
        k: int,
        excluded: set[int],
        filters: Filters | None,
        prepared: dict[str, Any],
        weights: Mapping[str, float] | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every item scored, standardised over the catalog; the mask applied at the end."""
        scores = self.scorer.score(matrix, weights=weights, prepared=prepared)
        every = np.arange(self.n_items)
        mask = ~self.catalog.passes(every, filters)
        mask[list(excluded)] = True
        ranked = top_k(scores, k, exclude=mask[None, :])[0]
        ranked = ranked[ranked >= 0]
        return ranked, scores[0, ranked]

    def _rerank(
        self, ranked: np.ndarray, scores: np.ndarray, k: int, rerank: Rerank | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k items the re-ranking chooses from the relevance ranking (best first)."""
        if rerank is None or not rerank.active or not len(ranked):
            return ranked[:k], scores[:k]
        relevance = relevance_scale(scores)
        boosts = {a: t for a, t in rerank.boosts.items() if t}
        if boosts:
            relevance *= factors({a: self.catalog.values(ranked, a) for a in boosts}, boosts)
        vectors = self.item_vectors(ranked) if rerank.diversity > 0 else None
        chosen = rerank_order(relevance, k, diversity=rerank.diversity, vectors=vectors)
        return ranked[chosen], scores[chosen]

    def low_exposure(self, max_popularity: float) -> np.ndarray:
        """Items with at most ``max_popularity`` training shoppers, and every item added since."""
        new = np.arange(self.catalog.n_base, self.n_items)
        return np.concatenate([self._low_popularity(max_popularity), new])

    def _low_popularity(self, max_popularity: float) -> np.ndarray:
        base = self._low_exposure.get(max_popularity)
        if base is None:
            base = np.flatnonzero(np.asarray(self._popularity) <= max_popularity)
            self._low_exposure[max_popularity] = base
        return base

    def _sample_low_exposure(self, explore: Explore) -> np.ndarray:
        """Up to ``explore.sample`` distinct low-exposure items drawn at random, in O(sample)
        (the pool can be half of a million-item catalog)."""
        base = self._low_popularity(explore.max_popularity)
        n_new = self.n_items - self.catalog.n_base
        total = len(base) + n_new
        if total <= explore.sample:
            return self.low_exposure(explore.max_popularity)
        drawn = np.unique(np.random.default_rng(explore.seed).integers(0, total, explore.sample))
        old = drawn < len(base)
        return np.concatenate([base[drawn[old]], self.catalog.n_base + drawn[~old] - len(base)])

    def _explore(
        self,
        result: Recommendation,
        k: int,
        explore: Explore | None,
        excluded: set[int],
        filters: Filters | None,
        personal: Personal | None,
    ) -> Recommendation:
        """``result`` with its exploration slots filled, spread evenly over the list (an item
        of the list never repeats; fewer eligible items: fewer slots)."""
        slots = explore.slots(k) if explore is not None else 0
        if explore is None or not slots:
            return result
        pool = self._sample_low_exposure(explore)
        taken = np.fromiter(excluded | explore.saturated, dtype=np.int64, count=-1)
        pool = pool[~np.isin(pool, taken) & ~np.isin(pool, result.item_idx)]
        pool = pool[self.catalog.passes(pool, filters)]
        chosen = pool[best(self._exploration_scores(pool, personal), slots)] if len(pool) else pool
        if personal is not None and len(chosen):
            matrix, prepared = personal
            chosen_scores = self.scorer.score_items(matrix, chosen, prepared=prepared)[0]
        else:
            chosen_scores = np.array([self.popularity(int(i)) for i in chosen], dtype=np.float32)
        keep = k - len(chosen)
        ranked, scores = list(result.item_idx[:keep]), list(result.scores[:keep])
        explored = [False] * len(ranked)
        for n, (item, score) in enumerate(zip(chosen, chosen_scores, strict=True)):
            at = min(len(ranked), (n + 1) * k // (len(chosen) + 1))
            ranked.insert(at, int(item))
            scores.insert(at, float(score))
            explored.insert(at, True)
        result.item_idx = np.array(ranked, dtype=np.int64)
        result.scores = np.array(scores, dtype=np.float32)
        result.explored = np.array(explored, dtype=bool)
        return result

    def _exploration_scores(self, pool: np.ndarray, personal: Personal | None) -> np.ndarray:
        """The collaborative score u e_i + b_i of each candidate (no history: the bias b_i, the
        model's prior); without a VAE, 0 (the random sample decides)."""
        if self._vae is None:
            return np.zeros(len(pool), np.float32)
        if personal is None:
            return np.asarray(self._vae.bias.take(pool), dtype=np.float32)
        matrix, prepared = personal
        return self._vae.score(matrix, prepared.get("vae"), pool)[0]

    def item_vectors(self, items: np.ndarray) -> np.ndarray | None:
        """(len(items), d) vectors diversity compares: the decoder's item embeddings (items
        shoppers take together are close), else the content embeddings; None without both."""
        if self._vae is not None:
            return self._vae.item_vectors(np.asarray(items))
        if self._content is not None:
            return self._content.unit.take(np.asarray(items))
        return None

    def explain(self, ranked: np.ndarray, history: dict[int, float], top: int = 3) -> list[list[str]]:
        """Per recommended item, the history items with the largest item-item contribution
        h_i * B[i, j]; when none is positive, the most content-similar history item."""
        idx = np.fromiter(history.keys(), dtype=np.int64)
        weights = np.fromiter(history.values(), dtype=np.float32)
        contrib = np.zeros((len(idx), len(ranked)), np.float32)  # (h, n)
        if self._item_item is not None:
            for row, (item, weight) in enumerate(zip(idx, weights, strict=True)):
                single = histories_matrix([(np.array([item]), np.array([weight]))], self.n_items)
                contrib[row] = self._item_item.score(single, items=np.asarray(ranked))[0]
        similarity = self._similarity_matrix(idx, np.asarray(ranked))
        out = []
        for column in range(len(ranked)):
            order = np.argsort(-contrib[:, column])[:top]
            chosen = [idx[i] for i in order if contrib[i, column] > 0]
            if not chosen:
                chosen = [idx[int(np.argmax(similarity[:, column]))]]
            out.append([self.item_id(int(i)) for i in chosen])
        return out

    def _similarity_matrix(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        if self._content is not None:
            return self._content.unit.take(left) @ self._content.unit.take(right).T
        return np.zeros((len(left), len(right)), np.float32)

    def similar(self, item_idx: int, *, k: int, by: SimilarBy) -> tuple[np.ndarray, np.ndarray]:
        """Items most similar to one item: collaborative (cosine of decoder embeddings, which
        the content map fills for new items) or content (item autoencoder embeddings)."""
        content = self._content if by == SimilarBy.content else None
        if content is None and self._vae is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        n = k + 1
        while True:  # ask for more until k available items are found, or none is left
            if content is not None:
                query = content.unit.take(np.array([item_idx]))[0]
                pool = content.nearest(query, n, None)
                scores = content.unit.take(pool) @ query
            else:
                assert self._vae is not None
                pool, scores = self._vae.similar(item_idx, n)
            keep = self.catalog.available(pool) & (pool != item_idx)
            if keep.sum() >= k or len(pool) < n:
                break
            n *= 4
        pool, scores = pool[keep], np.asarray(scores, dtype=np.float32)[keep]
        order = best(scores, k)
        return pool[order], scores[order]

    def item_view(self, idx: int) -> Mapping[str, Any]:
        return self.catalog.view(idx)

    def indices_of(self, item_ids: frozenset[str]) -> frozenset[int]:
        """The known items of a set of ids, remembered for the last set asked (the exposure
        store hands out the same set object until it rereads Redis)."""
        cached = self._indices_of
        if cached is None or cached[0] is not item_ids or cached[1] != self.n_items:
            found = self.known_ids(sorted(item_ids)).tolist() if item_ids else []
            cached = self._indices_of = (item_ids, self.n_items, frozenset(i for i in found if i >= 0))
        return cached[2]

    def known_ids(self, item_ids: Sequence[str]) -> np.ndarray:
        """Item index of each id (-1: unknown; a deleted item keeps its index)."""
        return self.catalog.indices(item_ids)
