"""The component seam, serving side: one blend component is the artifact arrays it owns, how
it scores a batch of histories (for every item, or for candidate items), which candidates it
proposes for one history (two-stage serving), and how it takes catalog changes.

A component's arrays are named in :attr:`Component.arrays` with their dtype and shape (names
of ``manifest["dims"]``); an array whose first dim is ``n_items`` holds one row per item of
the artifact. Training writes the same names (``models/components/``), so the artifact
loader, the blend, retrieval and catalog changes loop over
:data:`app.scoring.components.REGISTRY` without knowing any component.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from app.scoring.ann import VectorIndex
from app.scoring.rows import Histories

ArraySpec = tuple[str, tuple[str, ...]]  # (dtype, shape as names of manifest["dims"])


class Component:
    name: ClassVar[str]
    arrays: ClassVar[dict[str, ArraySpec]]
    # The vector sets it searches by inner product (app.scoring.ann): exact by default, an
    # approximate index from the artifact when it has one (large catalogs).
    index_names: ClassVar[tuple[str, ...]] = ()
    # Those of them whose score has a popularity term (the VAE's bias): in an IVF artifact
    # their most popular items are kept out of the clusters and scanned exactly (the head,
    # app.scoring.ann). A cosine index needs no head: its IVF holds every item.
    head_indexes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.n_base = len(arrays["popularity"])
        self.n_items = self.n_base  # grows with new catalog items
        self.indexes: dict[str, VectorIndex] = {}
        self._reference: np.ndarray | None = None

    def index_vectors(self, name: str) -> np.ndarray:
        """(n_base, d) rows of index ``name`` (export time: the approximate index is built
        from them); a query's inner product with a row is what ``indexes[name]`` ranks by."""
        raise NotImplementedError

    def index_queries(self, name: str, n: int) -> np.ndarray:
        """Up to ``n`` queries like the requests' for index ``name`` (export checks an
        approximate index's recall on them). Default: a fixed sample of its own rows, as
        ``similar`` asks."""
        vectors = self.index_vectors(name)
        return np.asarray(vectors[sample_items(len(vectors), n)], dtype=np.float32)

    def prepare(self, histories: Histories) -> Any:
        """Per-batch state computed once and shared by ``score`` and ``candidates`` (the VAE's
        user vectors, the content profiles, one history's item-item scores); None: none."""
        return None

    def score(
        self, histories: Histories, prepared: Any = None, items: np.ndarray | None = None
    ) -> np.ndarray:
        """Raw scores (B, n_items) float32, or (B, len(items)) for the given item indices."""
        raise NotImplementedError

    def moments(self, histories: Histories, prepared: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (B, 1) of each history's scores over the catalog,
        without scoring every item: two-stage re-ranking standardises the candidates with
        them, so a candidate gets the z-score that exhaustive scoring gives it. Default: over
        a fixed random sample of the artifact's items."""
        if self._reference is None:
            self._reference = sample_items(self.n_base, REFERENCE_SAMPLE)
        scores = self.score(histories, prepared, self._reference)
        return scores.mean(axis=1, keepdims=True), scores.std(axis=1, keepdims=True)

    def warm(self) -> None:
        """Compute now what scoring would compute on first use (two-stage serving, at load)."""

    def candidates(self, history: Histories, prepared: Any, n: int, allowed: np.ndarray | None) -> np.ndarray:
        """Up to ``n`` item indices this component ranks highest for one history (best
        first), among ``allowed`` (sorted indices) when given. Default: none."""
        return np.zeros(0, dtype=np.int64)

    def candidates_many(self, histories: Histories, prepared: Any, n: int) -> list[np.ndarray] | None:
        """Each history's ``candidates`` (no ``allowed``) for a batch at once, where a batch
        is cheaper than one history at a time (an exact vector scan: offline, the blend's
        validation users at 1M items); None: ask per history."""
        return None

    def apply_changes(
        self,
        *,
        changed: np.ndarray,
        new: np.ndarray,
        features: np.ndarray,
        components: Mapping[str, Component],
    ) -> None:
        """Take catalog changes: ``changed`` item indices (sorted, ``new`` among them, past the
        artifact's items) with their item-feature rows ``features``. Components run in registry
        order, so a later one can read what an earlier one of ``components`` set (the VAE maps
        the content embedding of a new item)."""
        if len(new):
            self.n_items = max(self.n_items, int(new.max()) + 1)


REFERENCE_SAMPLE = 4096  # items scored to estimate a component's score moments (default)
MOMENT_SAMPLE = 65_536  # item rows behind a linear component's mean and covariance


def sample_items(n_items: int, size: int) -> np.ndarray:
    """A fixed (seeded) sorted sample of item indices; every item when there are few."""
    if n_items <= size:
        return np.arange(n_items, dtype=np.int64)
    return np.sort(np.random.default_rng(0).choice(n_items, size, replace=False)).astype(np.int64)


class LinearMoments:
    """Scores that are inner products x_i . q of item rows with a query: over the catalog
    their mean is m . q and their variance q' C q, m and C the mean and covariance of the
    rows (float64; from every row of a catalog up to MOMENT_SAMPLE items, else a sample).
    Computed on first use (two-stage serving warms it at load).

    C is kept as its eigenvectors, the top r and the mean f of the other eigenvalues
    (q' C q = sum_i (l_i - f)(v_i . q)^2 + f |q|^2): r is the smallest of RANK, 2 RANK, ...
    that puts the deviation within TOLERANCE of the full covariance's for a sample of
    ``queries`` (rows like the requests' queries: the VAE's stored user vectors; default the
    item rows), else every direction (exact). A request reads r columns: on Amazon Beauty's
    VAE ([e | b], d = 601) r = 64, 154 kB instead of the 1.4 MB covariance (-44..-91 us a
    request, paired; test NDCG@100 and top-10 lists unchanged: docs/benchmarks.md)."""

    RANK = 64
    TOLERANCE = 1e-3
    QUERY_SAMPLE = 256

    def __init__(
        self, rows: np.ndarray, bias: np.ndarray | None = None, queries: np.ndarray | None = None
    ) -> None:
        self.rows, self.bias, self.queries = rows, bias, queries
        self._stats: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None

    def stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(mean float64 (d,), eigenvectors float32 (d, r), their eigenvalues less f float64
        (r,), f: the mean eigenvalue of the directions left out, 0 when none are)."""
        if self._stats is None:
            x = self._with_bias(self.rows, sample_items(len(self.rows), MOMENT_SAMPLE))
            mean = x.mean(axis=0)
            centred = x - mean
            cov = centred.T @ centred / len(x)
            values, vectors = np.linalg.eigh(cov)  # ascending
            values, vectors = np.maximum(values[::-1], 0.0), vectors[:, ::-1]
            source = self.rows if self.queries is None else self.queries
            queries = self._with_bias(source, sample_items(len(source), self.QUERY_SAMPLE))
            r = self._rank(cov, values, vectors, queries)
            rest = float(values[r:].mean()) if r < len(values) else 0.0
            kept = np.ascontiguousarray(vectors[:, :r], dtype=np.float32)
            self._stats = mean, kept, values[:r] - rest, rest
        return self._stats

    def _rank(self, cov: np.ndarray, values: np.ndarray, vectors: np.ndarray, q: np.ndarray) -> int:
        """Directions to keep: the smallest of RANK, 2 RANK, ... below half of them whose
        deviations for the queries ``q`` are within TOLERANCE of the full covariance's, else
        all of them."""
        full = np.sqrt(np.maximum(((q @ cov) * q).sum(axis=1), 1e-30))
        norms = (q * q).sum(axis=1)
        r = self.RANK
        while 2 * r < len(values):
            rest = float(values[r:].mean())
            along = q @ vectors[:, :r]
            approx = np.sqrt(np.maximum((along * along) @ (values[:r] - rest) + rest * norms, 0.0))
            if np.max(np.abs(approx / full - 1.0)) <= self.TOLERANCE:
                return r
            r *= 2
        return len(values)

    def _with_bias(self, rows: np.ndarray, pick: np.ndarray) -> np.ndarray:
        """float64 rows ``pick`` of ``rows``, with the bias (item rows) or a column of ones
        (queries) appended when the scores carry a bias."""
        x = np.asarray(rows[pick], dtype=np.float64)
        if self.bias is None:
            return x
        extra = np.asarray(self.bias[pick], dtype=np.float64) if rows is self.rows else np.ones(len(x))
        return np.hstack([x, extra[:, None]])

    def __call__(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std), each (B, 1) float32, of the scores of queries (B, d)."""
        mean, vectors, values, rest = self.stats()
        q = np.asarray(queries, dtype=np.float32)
        along = (q @ vectors).astype(np.float64)  # a BLAS product
        variance = (along * along) @ values
        if rest:
            variance += rest * (q.astype(np.float64) ** 2).sum(axis=1)
        std = np.sqrt(np.maximum(variance, 0.0))
        return (q.astype(np.float64) @ mean).astype(np.float32)[:, None], std.astype(np.float32)[:, None]


def per_item(spec: ArraySpec) -> bool:
    return bool(spec[1]) and spec[1][0] == "n_items"
