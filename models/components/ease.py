"""The item-item component (EASE family, see models/ease.py): its settings are chosen on the
validation users by coordinate search, one parameter at a time from plain EASE, each tried
value a closed-form fit; the popularity exponent costs no fit and is tried on every one.

The exported matrix keeps each item's ``neighbors`` largest weights by magnitude (CSR).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from models import ease as ease_model
from models import ease_sparse
from models.components.base import Fitted, Log, TrainData, warm
from models.config import ConfigError, EASEConfig, TrainConfig
from models.evaluation import rank
from models.metrics import ndcg_at_k

# The order of the coordinate search: lambda first (it matters most), then the rest.
SEARCH = (
    ("lam", "lambdas"),
    ("dropout", "dropouts"),
    ("alpha", "attribute_weights"),
    ("a", "user_exponents"),
)


class ItemItemTrainer:
    name = "ease"

    def select(self, data: TrainData, config: TrainConfig, shared: dict[str, Any], log: Log) -> Fitted:
        started = time.perf_counter()
        if data.n_items > config.ease.exact_max_items:
            return select_sparse(data, config.ease, log, started)
        search = Search(data, config.ease, log)
        best = search.run()
        matrix = search.best_matrix
        report = {**best, "grid": search.tried, "seconds": time.perf_counter() - started}
        return Fitted(arrays=export(matrix, config.ease), chosen=best, report=report)

    def refit(
        self, data: TrainData, config: TrainConfig, chosen: dict[str, Any], shared: dict[str, Any], log: Log
    ) -> dict[str, np.ndarray]:
        full = data.full
        log(f"item-item refit on {full.shape[0]:,} users: {describe(chosen)}")
        if chosen.get("sparse"):
            return export_csr(fit_sparse(full, chosen, config.ease, log, attributes=data.attributes))
        return export(fit(full, data.attributes, chosen), config.ease)


def fit(train: sp.csr_matrix, attributes: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Dense B (n_items, n_items) float32 for one setting, popularity deflation included."""
    g = ease_model.gram(train, attributes, params["alpha"], user_exponent=params["a"])
    b = ease_model.fit_ease(g, params["lam"], dropout=params["dropout"], warm=warm(train))
    return ease_model.deflate(b, ease_model.popularity(train), params["beta"])


def select_sparse(data: TrainData, config: EASEConfig, log: Log, started: float) -> Fitted:
    """The sparse item-item model's settings on validation (the popularity exponent free on
    every fit): the local solver walks ``lambdas``, then searches dropout, attributes and user
    weights as the exact search does; SANSA tries each of ``sparse_lambdas``."""
    if config.sparse_solver == "sansa" and not ease_sparse.available():
        raise ConfigError(
            f"{data.n_items:,} items: ease.sparse_solver sansa needs the scale extra (SuiteSparse): "
            'make install-scale, or "sparse_solver": "local"'
        )
    rows = np.flatnonzero(np.diff(data.val_target.indptr) > 0)
    foldin, target = data.val_foldin[rows], data.val_target[rows]
    popularity = ease_model.popularity(data.train)
    tried: list[dict[str, Any]] = []
    best: dict[str, Any] = {"ndcg@100": -1.0}
    best_matrix = sp.csr_matrix((data.n_items, data.n_items))
    solver = config.sparse_solver
    base = {"sparse": True, "solver": solver, "dropout": config.dropouts[-1], "alpha": 0.0, "a": 0.0}

    def attempt(lam: float, **changed: float) -> float:
        nonlocal best, best_matrix
        chosen = {k: best.get(k, base[k]) for k in ("dropout", "alpha", "a")}
        params = {**base, **chosen, **changed, "lam": lam, "beta": 0.0}
        b = fit_sparse(data.train, params, config, log, attributes=data.attributes)
        ndcgs = batched_ndcg(foldin, target, b, popularity, config.popularity_exponents)
        for beta, ndcg in zip(config.popularity_exponents, ndcgs, strict=True):
            tried.append({**params, "beta": beta, "ndcg@100": ndcg})
            if ndcg > best["ndcg@100"]:
                best = tried[-1]
                best_matrix = sp.csr_matrix(b @ sp.diags((popularity + 1.0) ** np.float32(-beta)))
        log(
            f"item-item ({solver}) lambda {lam:g} dropout {params['dropout']:g} alpha {params['alpha']:g} "
            f"a {params['a']:g}: validation ndcg@100 {max(ndcgs):.4f}, best so far {best['ndcg@100']:.4f}"
        )
        return max(ndcgs)

    if config.sparse_solver == "local":
        walk(config.lambdas, attempt)
        # Then, at the chosen lambda, the exact search's other coordinates in its order (the
        # attribute weight from the local grid), each grid's other values in increasing order
        # while they help (each value one more fit). SANSA's Gram stays plain interactions.
        with_attributes = bool(data.attributes.nnz and config.local_attribute_neighbors)
        coordinates = [
            ("dropout", config.dropouts),
            *([("alpha", config.local_attribute_weights)] if with_attributes else []),
            ("a", config.user_exponents),
        ]
        for key, grid in coordinates:
            current, previous = best[key], best["ndcg@100"]
            for value in sorted(v for v in grid if v != current):
                if attempt(best["lam"], **{key: value}) <= previous:
                    break
                previous = best["ndcg@100"]
    else:
        for lam in config.sparse_lambdas:
            attempt(lam)
    report = {**best, "grid": tried, "seconds": time.perf_counter() - started}
    return Fitted(arrays=export_csr(best_matrix), chosen=best, report=report)


def walk(grid: list[float], score: Any) -> None:
    """Score values of the sorted grid from its middle towards the better neighbour, stopping
    at the first worse one: validation NDCG is unimodal in lambda, so this finds the grid's
    best in fewer fits (Beauty: 3 of 4)."""
    values = sorted(grid)
    found: dict[int, float] = {}

    def at(i: int) -> float:
        if i not in found:
            found[i] = score(values[i])
        return found[i]

    i = len(values) // 2
    at(i)
    for step in (-1, 1):
        while 0 <= i + step < len(values) and at(i + step) > at(i):
            i += step


def batched_ndcg(
    foldin: sp.csr_matrix,
    target: sp.csr_matrix,
    b: sp.csr_matrix,
    popularity: np.ndarray,
    betas: list[float],
    *,
    block: int = 2000,
) -> list[float]:
    """Validation NDCG@100 of the sparse model for each popularity exponent. Its scores
    ``x B`` are sparse: each user's positive scores are ranked (the fold-in excluded) and
    the items without a positive score, which a dense ranking would order arbitrarily
    among equal zeros, count as misses. A dense ranking of 10,000 users over 1M items took
    longer than the fit."""
    n_users = foldin.shape[0]
    deflation = [(popularity + 1.0) ** np.float32(-beta) for beta in betas]
    totals = np.zeros(len(betas))
    for start in range(0, n_users, block):
        rows = foldin[start : start + block]
        scores = sp.csr_matrix(rows @ b, dtype=np.float32)
        scores = sp.csr_matrix(scores - scores.multiply(rows > 0))  # seen items out
        for j, factor in enumerate(deflation):
            ranked = sparse_top(sp.csr_matrix(scores @ sp.diags(factor)), 100)
            totals[j] += ndcg_at_k(ranked, target[start : start + block], 100).sum()
    return [float(t / max(n_users, 1)) for t in totals]


def sparse_top(scores: sp.csr_matrix, k: int) -> np.ndarray:
    """(n_rows, k) indices of each row's best positive entries, best first, -1 padded."""
    out = np.full((scores.shape[0], k), -1, dtype=np.int64)
    for r in range(scores.shape[0]):
        lo, hi = scores.indptr[r], scores.indptr[r + 1]
        values, columns = scores.data[lo:hi], scores.indices[lo:hi]
        positive = values > 0
        values, columns = values[positive], columns[positive]
        if len(values) > k:
            part = np.argpartition(-values, k - 1)[:k]
            values, columns = values[part], columns[part]
        order = np.argsort(-values, kind="stable")
        out[r, : len(order)] = columns[order]
    return out


def fit_sparse(
    train: sp.csr_matrix,
    params: dict[str, Any],
    config: EASEConfig,
    log: Log,
    *,
    attributes: sp.csr_matrix | None = None,
) -> sp.csr_matrix:
    common = {
        "lam": params["lam"],
        "dropout": params["dropout"],
        "user_exponent": params["a"],
        "cap": config.history_cap,
        "neighbors": config.neighbors or 500,
        "log": log,
        "min_count": config.min_cooccurrence,
    }
    if params.get("solver", "sansa") == "local":
        b = ease_sparse.fit_local(
            train,
            local_neighbors=config.local_neighbors,
            attributes=attributes,
            alpha=params.get("alpha", 0.0),
            attribute_neighbors=config.local_attribute_neighbors,
            attribute_max_df=config.attribute_max_df,
            **common,
        )
    else:
        density = min(1.0, config.sparse_nonzeros / max(train.shape[1], 1))
        b = ease_sparse.fit_sansa(train, density=density, **common)
    if params.get("beta"):
        b = sp.csr_matrix(b @ sp.diags((ease_model.popularity(train) + 1.0) ** np.float32(-params["beta"])))
    return b


def export_csr(csr: sp.csr_matrix) -> dict[str, np.ndarray]:
    csr = sp.csr_matrix(csr, dtype=np.float32)
    csr.sort_indices()
    return {
        "ease_indptr": csr.indptr.astype(np.int64),
        "ease_indices": csr.indices.astype(np.int32),
        "ease_data": csr.data.astype(np.float32),
    }


def export(matrix: np.ndarray, config: EASEConfig) -> dict[str, np.ndarray]:
    csr = ease_model.sparsify(matrix, config.neighbors)
    return {
        "ease_indptr": csr.indptr.astype(np.int64),
        "ease_indices": csr.indices.astype(np.int32),
        "ease_data": csr.data.astype(np.float32),
    }


def describe(params: dict[str, Any]) -> str:
    return " ".join(f"{k} {params[k]:g}" for k in ("lam", "dropout", "alpha", "a", "beta"))


class Search:
    """Coordinate search over the EASE variants on validation NDCG@100."""

    def __init__(self, data: TrainData, config: EASEConfig, log: Log) -> None:
        self.data, self.config, self.log = data, config, log
        self.train = data.train
        self.popularity = ease_model.popularity(self.train)
        rows = np.flatnonzero(np.diff(data.val_target.indptr) > 0)
        self.foldin, self.target = data.val_foldin[rows], data.val_target[rows]
        self.tried: list[dict[str, float]] = []
        self.best: dict[str, Any] = {"ndcg@100": -1.0}
        self.best_matrix = np.zeros((0, 0), np.float32)

    def run(self) -> dict[str, Any]:
        c = self.config
        current = {"lam": c.lambdas[len(c.lambdas) // 2], "dropout": 0.0, "alpha": 0.0, "a": 0.0}
        for param, grid_name in SEARCH:
            if param == "lam":
                self._lambda_search(current)
                current = {k: self.best[k] for k in current}
                continue
            grid = getattr(c, grid_name)
            for value in grid:
                candidate = {**current, param: value}
                if not any(self._same(candidate, row) for row in self.tried):
                    self._try(candidate)
            current = {k: self.best[k] for k in current}
        return {k: v for k, v in self.best.items() if k != "ndcg@100"} | {"ndcg@100": self.best["ndcg@100"]}

    def _lambda_search(self, current: dict[str, Any]) -> None:
        """Lambda by ``walk`` (each value a 12k x 12k inverse on Beauty)."""
        walk(self.config.lambdas, lambda lam: self._try({**current, "lam": lam}))

    @staticmethod
    def _same(candidate: dict[str, Any], row: dict[str, float]) -> bool:
        return all(row[k] == v for k, v in candidate.items())

    def _try(self, params: dict[str, Any]) -> float:
        """Fit one setting, score it with every popularity exponent; its best validation NDCG."""
        g = ease_model.gram(self.train, self.data.attributes, params["alpha"], user_exponent=params["a"])
        b = ease_model.fit_ease(g, params["lam"], dropout=params["dropout"], warm=warm(self.train))
        del g
        scores = np.asarray(self.foldin @ b, dtype=np.float32)
        for beta in self.config.popularity_exponents:
            deflated = scores * (self.popularity + 1.0) ** np.float32(-beta) if beta else scores.copy()
            ndcg = float(ndcg_at_k(rank(deflated, self.foldin), self.target, 100).mean())
            row = {**params, "beta": beta, "ndcg@100": ndcg}
            self.tried.append(row)
            if ndcg > self.best["ndcg@100"]:
                self.best = row
                self.best_matrix = ease_model.deflate(b, self.popularity, beta)
        ndcg = max(r["ndcg@100"] for r in self.tried[-len(self.config.popularity_exponents) :])
        self.log(
            f"item-item {describe({**params, 'beta': 0})}: validation ndcg@100 {ndcg:.4f} "
            f"(best {self.best['ndcg@100']:.4f}: {describe(self.best)})"
        )
        return ndcg
