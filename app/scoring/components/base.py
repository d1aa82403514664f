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

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.n_base = len(arrays["popularity"])
        self.n_items = self.n_base  # grows with new catalog items
        self.indexes: dict[str, VectorIndex] = {}
        self._reference: np.ndarray | None = None

    def index_vectors(self, name: str) -> np.ndarray:
        """(n_base, d) rows of index ``name`` (export time: the approximate index is built
        from them); a query's inner product with a row is what ``indexes[name]`` ranks by."""
        raise NotImplementedError

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
    Computed on first use (two-stage serving warms it at load)."""

    def __init__(self, rows: np.ndarray, bias: np.ndarray | None = None) -> None:
        self.rows, self.bias = rows, bias
        self._stats: tuple[np.ndarray, np.ndarray] | None = None

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean float64 (d,), covariance float32 (d, d)): accumulated in float64, kept in
        float32, since a request reads the whole covariance (1.4 MB at d = 601, not 2.9 MB:
        ~75 us less per request on Beauty, the same top-10 lists)."""
        if self._stats is None:
            pick = sample_items(len(self.rows), MOMENT_SAMPLE)
            x = np.asarray(self.rows[pick], dtype=np.float64)
            if self.bias is not None:
                x = np.hstack([x, np.asarray(self.bias[pick], dtype=np.float64)[:, None]])
            mean = x.mean(axis=0)
            centred = x - mean
            self._stats = mean, (centred.T @ centred / len(x)).astype(np.float32)
        return self._stats

    def __call__(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std), each (B, 1) float32, of the scores of queries (B, d)."""
        mean, cov = self.stats()
        q = np.asarray(queries, dtype=np.float32)
        # A BLAS product (einsum's loop is ~8x slower), summed in float64.
        variance = ((q @ cov) * q).sum(axis=1, dtype=np.float64)
        std = np.sqrt(np.maximum(variance, 0.0))
        return (q.astype(np.float64) @ mean).astype(np.float32)[:, None], std.astype(np.float32)[:, None]


def per_item(spec: ArraySpec) -> bool:
    return bool(spec[1]) and spec[1][0] == "n_items"
