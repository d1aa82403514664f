"""Nearest-neighbour search over item vectors, for candidate retrieval and similar items.

``ExactIndex`` scans every vector (numpy, one matrix-vector product): exact, and the right
choice for small catalogs and for small allowed sets. ``IVFIndex`` (faiss) is the
approximate index of large artifacts: built at export (:func:`build_indexes`) into the
version folder, memory-mapped at load (:func:`attach`). A component names the vector sets
it searches (``index_names``) and gives their rows at export (``index_vectors``); both
kinds of index answer the same ``search``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class VectorIndex(Protocol):
    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """Indices of the ``n`` base vectors with the largest inner product with ``query``
        (d,), best first; only among ``allowed`` (sorted indices) when given."""
        ...


SAMPLE = 1024  # scores sampled by :func:`largest` to find a bound under the n-th largest


def largest(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest of a 1-d ``scores``, in no order (exact).

    numpy's ``argpartition`` costs ~10 ns a score (~130 us at 12k items, 11 ms at 1M). When
    few are asked of many, a bound comes first: a strided sample's k-th largest, which about
    max(4n, 8 x the stride) scores reach (fewer than n: the full partition instead); the
    partition then runs on the scores at or above it alone (~20 us at 12k)."""
    size = len(scores)
    n = min(n, size)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if size > 2 * SAMPLE and 16 * n <= size:
        sample = scores[:: size // SAMPLE]
        k = min(len(sample), max(8, -(-4 * n * len(sample) // size)))
        bound = np.partition(sample, len(sample) - k)[len(sample) - k]
        above = np.flatnonzero(scores >= bound)
        if n <= len(above) <= size // 4:
            return above[np.argpartition(-scores[above], n - 1)[:n]]
    return np.argpartition(-scores, n - 1)[:n]


def best(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest scores, best first."""
    part = largest(scores, n)
    return part[np.argsort(-scores[part], kind="stable")]


def best_rows(scores: np.ndarray, n: int) -> np.ndarray:
    """:func:`best` of each row of ``scores`` (B, m): (B, min(n, m)) positions, best first."""
    n = min(n, scores.shape[1])
    if n <= 0:
        return np.zeros((len(scores), 0), dtype=np.int64)
    if len(scores) == 1:  # one request's row
        return best(scores[0], n)[None, :].astype(np.int64)
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


SCAN_BUDGET = 1 << 25  # scores held at once by a batched exact scan: 128 MB of float32


def scan_many(
    scores_of: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, n: int, size: int
) -> np.ndarray:
    """(B, n) best-first indices of each query's ``n`` highest scores among ``size`` vectors,
    ``scores_of(block)`` giving a block of queries' (b, size) scores: one matrix product per
    block instead of one matrix-vector product (and one read of every vector) per query."""
    block = max(1, SCAN_BUDGET // max(size, 1))
    found = [best_rows(scores_of(queries[i : i + block]), n) for i in range(0, len(queries), block)]
    return np.vstack(found) if found else np.zeros((0, min(n, size)), dtype=np.int64)


def distinct(*arrays: np.ndarray) -> np.ndarray:
    """The sorted distinct int64 values of the arrays together: ``np.union1d`` of any number
    of arrays, by one sort (numpy's ``unique`` costs ~10x more on the few thousand candidate
    ids of a request)."""
    values = np.sort(
        np.concatenate([np.zeros(0, np.int64), *(np.asarray(a, dtype=np.int64).ravel() for a in arrays)])
    )
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def member(values: np.ndarray, of: np.ndarray) -> np.ndarray:
    """(len(values),) bool: each value is in ``of`` (a request's exclusions: few). ``np.isin``
    by binary search: ~4 us for a few hundred candidates, against ~20 us for numpy's."""
    values, of = np.asarray(values), np.sort(np.asarray(of))
    if not len(of):
        return np.zeros(len(values), dtype=bool)
    return of[np.minimum(np.searchsorted(of, values), len(of) - 1)] == values


class ExactIndex:
    """Inner product with every vector of ``vectors`` (n, d), divided by ``norms`` (n,) when
    given (cosine, for a unit query): exact."""

    def __init__(self, vectors: np.ndarray, norms: np.ndarray | None = None) -> None:
        self.vectors, self.norms = vectors, norms

    def _scores(self, rows: np.ndarray | None, query: np.ndarray) -> np.ndarray:
        vectors = np.asarray(self.vectors if rows is None else self.vectors[rows])
        scores = vectors @ query
        if self.norms is not None:
            norms = np.asarray(self.norms if rows is None else self.norms[rows])
            scores = scores / np.maximum(norms, np.float32(1e-12))
        return scores

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        if allowed is not None:
            return allowed[best(self._scores(allowed, query), n)]
        return best(self._scores(None, query), n).astype(np.int64)

    def search_many(self, queries: np.ndarray, n: int) -> np.ndarray:
        """(B, n): :meth:`search` of each row of ``queries`` (no ``allowed``)."""
        vectors = np.asarray(self.vectors)
        norms = None if self.norms is None else np.maximum(np.asarray(self.norms), np.float32(1e-12))

        def scores(block: np.ndarray) -> np.ndarray:
            out = block @ vectors.T
            return out if norms is None else out / norms

        return scan_many(scores, queries, n, len(vectors))


class DistinctRowsIndex:
    """Exact inner-product search over rows of which many are equal: items with the same
    attributes have the same content embedding (Amazon Beauty: 3,116 distinct rows of
    12,101). Each distinct row is scanned once (a quarter of the bytes there) and its items
    follow it in index order; the grouping is found on first use (:meth:`warm` at load: 80 ms
    at 12k items, 0.5 s at 100k; from ``retrieval.ann_from_items`` an IVF index replaces it)."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self._groups: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def warm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distinct rows, items grouped by their row (ascending within), group starts)."""
        if self._groups is None:
            distinct, inverse = np.unique(np.asarray(self.vectors), axis=0, return_inverse=True)
            inverse = inverse.ravel()
            starts = np.zeros(len(distinct) + 1, dtype=np.int64)
            np.cumsum(np.bincount(inverse, minlength=len(distinct)), out=starts[1:])
            members = np.argsort(inverse, kind="stable").astype(np.int64)
            self._groups = np.ascontiguousarray(distinct, dtype=np.float32), members, starts
        return self._groups

    def _items(self, groups: np.ndarray, n: int) -> np.ndarray:
        """The first ``n`` items of the groups, best group first (n groups always suffice)."""
        _, members, starts = self.warm()
        covered = np.cumsum(starts[groups + 1] - starts[groups])
        chosen = groups[: int(np.searchsorted(covered, n)) + 1].tolist()
        runs = (members[starts[g] : starts[g + 1]] for g in chosen)
        return np.concatenate([np.zeros(0, np.int64), *runs])[:n]

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        if allowed is not None:
            return allowed[best(np.asarray(self.vectors[allowed]) @ query, n)]
        distinct, _, _ = self.warm()
        return self._items(best(distinct @ query, n), n)

    def search_many(self, queries: np.ndarray, n: int) -> np.ndarray:
        """(B, n): :meth:`search` of each row of ``queries`` (no ``allowed``)."""
        distinct, _, _ = self.warm()
        groups = scan_many(lambda block: block @ distinct.T, queries, n, len(distinct))
        width = min(n, len(self.vectors))
        return np.vstack([np.zeros((0, width), np.int64), *(self._items(g, n)[None, :] for g in groups)])


# -- approximate: faiss IVF over the long tail, the head scanned exactly ---------------------
#
# Chosen by measurement (docs/benchmarks.md, "Which nearest-neighbour index"): faiss-cpu's
# IndexIVFFlat with inner product. At 1M items an exact scan costs tens of ms a query; IVF
# probes ``nprobe`` of ``nlist`` clusters. Under the VAE's biased score the most popular items
# (``head``, 1% by default) get high scores from most queries and sit in few clusters, so they
# are kept out of that IVF and scanned exactly (a flat index): recall@500 0.985 at nprobe 32,
# against 0.14 without the head. Cosine indexes (content, similar items) have no such term:
# their IVF holds every item and their head is empty (``Component.head_indexes``); on the
# synthetic 1M artifact a head added no recall there and cost a 2.5-8 MB scan a search
# (docs/benchmarks.md, "Cosine indexes without the head"). A head wider than twice
# ``retrieval.lowrank_rank`` is itself shortlisted by a low-rank projection where that keeps
# its recall (as the exact scans of mid-size catalogs are, below; measured at export), in
# place of the faiss head; else the VAE's biased head is scanned exactly within a bound
# (``BoundedHead``). Files are memory-mapped read-only, shared by every worker. HNSW
# (hnswlib, usearch) did not reach that recall on [e | b] and builds 4-14x slower. No index
# does well under a selective filter (IVF's recall collapses, HNSW's cost explodes):
# retrieval scans small allowed sets exactly and post-filters broad ones; ``allowed`` here
# becomes an ID selector.
#
# Codec ``sq8`` (the default for new artifacts) stores each vector of 128 dimensions or more
# as one byte per dimension (faiss's 8-bit scalar quantizer; rows zero-padded to a multiple of
# 16 dimensions, where its SIMD kernels apply: at 201 dimensions a search was 12x slower),
# fetches twice the ids asked for and lets the component's exact index rank those, so the
# order is exact. A search reads a quarter of the bytes and the files are a quarter of the
# size. At 1M items, one core: with a cold cache 1.50 -> 0.98 ms for the VAE's 100
# candidates and 1.53 -> 0.86 ms for 11 similar items, recall 1.000 of the exact scan; warm,
# the VAE's candidates 50-70 us faster, the 64-d content index 90 us slower (decoding costs
# more than its bytes: narrower vectors stay float32). ``flat`` keeps float32 everywhere.


@dataclass(frozen=True)
class IVFSettings:
    """Manifest ``retrieval.index`` of an artifact with approximate indexes."""

    nlist: int
    nprobe: int
    head: int  # the most popular items, scanned exactly
    codec: str = "flat"  # "flat" (float32) or "sq8" (8-bit, re-ranked exactly)
    # The manifest's record of ``Component.head_indexes`` at export ("component.index": the
    # indexes that keep the head out of the IVF); None: every index (artifacts before 2026-12-07).
    head_indexes: Collection[str] | None = None


CODECS = ("flat", "sq8")
SQ_ALIGN = 16  # the scalar quantizer's SIMD width: rows are zero-padded to a multiple of it
SQ_FETCH = 2  # an sq8 search fetches this many times the ids asked for, for the exact ranking
SQ_MIN_DIM = 128  # narrower vectors stay float32 under sq8 (64-d: decoding cost more than it saved)


def ivf_settings(
    n_items: int, *, head_share: float = 0.01, nprobe: int = 32, codec: str = "flat"
) -> IVFSettings:
    """nlist ~ 4 sqrt(n) rounded to a power of two (4096 at 1M items), and no more than one
    list per 39 items (faiss's minimum of training points per centroid: 256 at 12k items)."""
    nlist = 1 << max(4, round(np.log2(4 * np.sqrt(max(n_items, 1)))))
    nlist = min(nlist, 1 << max(4, int(np.log2(max(n_items // 39, 1)))))
    return IVFSettings(nlist=nlist, nprobe=nprobe, head=int(n_items * head_share), codec=codec)


def padded(vectors: np.ndarray, dim: int) -> np.ndarray:
    """(n, dim) float32 rows: ``vectors`` with zero columns appended (inner products unchanged)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape[1] == dim:
        return np.ascontiguousarray(vectors)
    out = np.zeros((len(vectors), dim), dtype=np.float32)
    out[:, : vectors.shape[1]] = vectors
    return out


def index_files(components: Mapping[str, Any]) -> list[str]:
    """File names of the indexes of these components (``{component}.{index}.faiss`` for the
    IVF over the tail, ``...head.faiss`` for the exact head)."""
    return [
        f"{name}.{index}.{part}.faiss"
        for name, component in components.items()
        for index in component.index_names
        for part in ("tail", "head")
    ]


def head_indexes(components: Mapping[str, Any]) -> list[str]:
    """Names ("component.index") of the indexes whose score favours popular items: they get a head."""
    return [f"{name}.{index}" for name, component in components.items() for index in component.head_indexes]


def head_items(popular_order: np.ndarray, head: int) -> np.ndarray:
    """The items an IVF artifact scans exactly (its ``head`` most popular), sorted."""
    return np.sort(np.asarray(popular_order[:head], dtype=np.int64))


def build_indexes(
    folder: Path,
    components: Mapping[str, Any],
    popular_order: np.ndarray,
    settings: IVFSettings,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Write every component's IVF indexes into ``folder``; returns the file names."""
    faiss = _faiss()
    written = []
    popular_head = head_items(popular_order, settings.head)
    for name, component in components.items():
        for index_name in component.index_names:
            started = time.perf_counter()
            head = popular_head if index_name in component.head_indexes else popular_head[:0]
            vectors = np.ascontiguousarray(component.index_vectors(index_name), dtype=np.float32)
            n, d = vectors.shape
            sq8 = settings.codec == "sq8" and d >= SQ_MIN_DIM
            if sq8:
                d = -(-d // SQ_ALIGN) * SQ_ALIGN
                vectors = padded(vectors, d)
            tail = np.setdiff1d(np.arange(n, dtype=np.int64), head)
            quantizer = faiss.IndexFlatIP(d)
            ip = faiss.METRIC_INNER_PRODUCT
            if sq8:
                ivf = faiss.IndexIVFScalarQuantizer(
                    quantizer, d, settings.nlist, faiss.ScalarQuantizer.QT_8bit, ip
                )
                flat = faiss.IndexIDMap(faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, ip))
            else:
                ivf = faiss.IndexIVFFlat(quantizer, d, settings.nlist, ip)
                flat = faiss.IndexIDMap(faiss.IndexFlatIP(d))
            sample = np.random.default_rng(0).choice(tail, min(len(tail), 64 * settings.nlist), replace=False)
            ivf.train(vectors[np.sort(sample)])
            for start in range(0, len(tail), 200_000):
                ids = tail[start : start + 200_000]
                ivf.add_with_ids(vectors[ids], ids)
            if len(head):
                flat.train(vectors[head])
                flat.add_with_ids(vectors[head], head)
            for part, index in (("tail", ivf), ("head", flat)):
                file = f"{name}.{index_name}.{part}.faiss"
                faiss.write_index(index, str(folder / file))
                written.append(file)
            log(f"index {name}.{index_name}: {n:,} x {d} {'sq8' if sq8 else 'flat'}, nlist {settings.nlist}, "
                f"head {len(head):,}, {time.perf_counter() - started:.1f}s")  # fmt: skip
    return written


class IVFIndex:
    """The head scanned plus ``nprobe`` clusters of the tail; merged by score (sq8, or a
    shortlisted head: by the ``exact`` index's score of the ids found)."""

    def __init__(
        self,
        folder: Path,
        prefix: str,
        settings: IVFSettings,
        exact: VectorIndex | None = None,
        head: LowRankIndex | BoundedHead | None = None,
    ) -> None:
        """``head``: the head's exact answer, shortlisted by a projection or scanned with a
        bound (in place of the faiss head, which is then not read)."""
        faiss = _faiss()
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
        self.tail = faiss.read_index(str(folder / f"{prefix}.tail.faiss"), flags)  # IVFFlat or IVF-SQ8
        self.head = head or faiss.read_index(str(folder / f"{prefix}.head.faiss"), flags)
        self.exact_head = head is not None  # its answer: exact ids, best first
        lists = faiss.downcast_InvertedLists(self.tail.invlists)
        if hasattr(lists, "prefetch_nthread"):
            lists.prefetch_nthread = 0  # no prefetch threads per search
        self.nprobe = settings.nprobe
        quantized = isinstance(self.tail, faiss.IndexIVFScalarQuantizer)  # the file says its codec
        self.exact = exact if quantized or self.exact_head else None
        self.quantized = quantized
        self._faiss = faiss

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        faiss, q = self._faiss, padded(np.asarray(query)[None, :], self.tail.d)
        fetch = SQ_FETCH * n if self.quantized else n
        selector = None if allowed is None else faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        found_ids, found_scores = [], []
        parts = [(self.tail, faiss.SearchParametersIVF(sel=selector, nprobe=self.nprobe))]
        if self.exact_head:
            head = self.head.search(np.asarray(query, dtype=np.float32), n, allowed)
        else:
            head = None
            parts.append((self.head, faiss.SearchParameters(sel=selector) if selector else None))
        for index, params in parts:
            k = min(fetch, index.ntotal)
            if k <= 0:
                continue
            scores, ids = index.search(q, k, params=params)
            keep = ids[0] >= 0
            found_ids.append(ids[0][keep])
            found_scores.append(scores[0][keep])
        ids = np.concatenate(found_ids) if found_ids else np.zeros(0, dtype=np.int64)
        scores = np.concatenate(found_scores) if found_scores else np.zeros(0, dtype=np.float32)
        if self.exact is None:
            return ids[best(scores, n)].astype(np.int64)
        fetched = ids[best(scores, fetch)].astype(np.int64)
        if head is not None:
            fetched = np.concatenate([fetched, head])
        if not len(fetched):
            return fetched
        return self.exact.search(np.asarray(query, dtype=np.float32), n, np.sort(fetched))


# -- shortlisted exact search: a low-rank projection picks, the exact index decides -------------
#
# For catalogs below the IVF's range (``retrieval.ann_from_items``), where an exact scan of
# [e | b] still costs ~1 ms a query at 12k items and 600 dims: inner products in the span of
# the vectors' top ``rank`` right singular vectors (32-64 of 601 on Amazon Beauty and Sports)
# shortlist ``shortlist`` x n items, and the component's exact index ranks that shortlist. The
# rank is the lowest that keeps the exact answer on typical queries (measured at export;
# how it varies by data: docs/benchmarks.md, "Low-rank shortlists"). Measured on the Beauty
# model, 20-item sessions, one core: recall@100 of the decoder's MIPS 1.000 at 3x and rank 64
# (exact scan 1.0 ms, this 0.11 ms; IVF with nprobe 32: 0.83 at 0.10 ms).


@dataclass(frozen=True)
class LowRankSettings:
    """Manifest ``retrieval.lowrank``."""

    rank: int  # the highest rank; only indexes more than twice as wide are projected
    shortlist: int  # items scored exactly per item asked for
    ranks: Mapping[str, int] = field(default_factory=dict)  # "component.index" -> its own rank
    # Export: each index without its own rank gets the lowest rank of MIN_RANK, MIN_RANK + 16,
    # ... up to ``rank`` whose shortlist keeps this mean recall@100 of the exact scan on the
    # component's typical queries (Component.index_queries); 0: ``rank`` as it is.
    min_recall: float = 0.0


# Below 32 the recall of single queries has heavy tails (Beauty and Sports at rank 16: mean
# recall 0.57-0.97 at k 10-100, the worst queries 0.0-0.45), which a sample's mean misses.
MIN_RANK = 32
RECALL_QUERIES, RECALL_AT = 512, 100


def shortlist_size(shortlist: int, n: int) -> int:
    """Items a LowRankIndex scores exactly for the best ``n``."""
    return max(shortlist * n, n + 100)


def lowrank_files(component: str, index: str, part: str = "") -> tuple[str, str]:
    """(projected rows (n, rank), basis (d, rank)) file names of one index (``part`` "head":
    of an IVF index's head)."""
    prefix = f"{component}.{index}" + (f".{part}" if part else "")
    return f"{prefix}.lowrank.npy", f"{prefix}.basis.npy"


def shortlist_recall(vectors: np.ndarray, projected: np.ndarray, basis: np.ndarray,
                     queries: np.ndarray, shortlist: int, k: int = RECALL_AT) -> float:  # fmt: skip
    """Mean share of each query's exact top k (by inner product with ``vectors``) that the
    projection's shortlist holds, which is what LowRankIndex.search returns of it; the lower
    of two: over every item, and over a random half of them (a filter: its top k lie deeper
    in the catalog's order, where the projection's errors weigh more)."""
    half = np.sort(np.random.default_rng(0).choice(len(vectors), len(vectors) // 2, replace=False))
    recalls = []
    for rows in (None, half):
        v, p = (vectors, projected) if rows is None else (vectors[rows], projected[rows])
        top = min(k, len(v))
        size = min(shortlist_size(shortlist, top), len(v))
        found = 0
        for start in range(0, len(queries), 32):
            q = queries[start : start + 32]
            truth = np.argpartition(-(v @ q.T), top - 1, axis=0)[:top].T
            short = np.argpartition(-(p @ (q @ basis).T), size - 1, axis=0)[:size].T
            pairs = zip(truth, short, strict=True)
            found += sum(len(np.intersect1d(t, s, assume_unique=True)) for t, s in pairs)
        recalls.append(found / (top * len(queries)))
    return min(recalls)


def build_lowrank(
    folder: Path,
    components: Mapping[str, Any],
    settings: LowRankSettings,
    log: Callable[[str], None] = print,
    head: np.ndarray | None = None,
) -> dict[str, int]:
    """Write the projections of every index wider than twice its rank (the rank chosen by
    ``settings.min_recall`` unless the index has its own; an index that no rank up to
    ``settings.rank`` keeps at that recall stays an exact scan); returns {"component.index":
    rank}. ``head``: project only these rows, the exact head of IVF indexes (of the indexes
    that have one: ``Component.head_indexes``)."""
    chosen = {}
    part = "" if head is None else "head"
    for name, component in components.items():
        for index_name in component.index_names:
            if head is not None and index_name not in component.head_indexes:
                continue
            started = time.perf_counter()
            key = f"{name}.{index_name}"
            vectors = np.asarray(component.index_vectors(index_name), dtype=np.float32)
            if head is not None:
                vectors = vectors[head]
            n, d = vectors.shape
            top = settings.ranks.get(key, settings.rank)
            if d <= 2 * top or n <= top:
                continue
            pick = np.random.default_rng(0).choice(n, min(n, 65_536), replace=False)
            sample = vectors[np.sort(pick)].astype(np.float64)
            _, eigenvectors = np.linalg.eigh(sample.T @ sample)  # ascending eigenvalues
            basis = np.ascontiguousarray(eigenvectors[:, ::-1][:, :top], dtype=np.float32)
            projected = np.empty((n, top), dtype=np.float32)
            for start in range(0, n, 100_000):
                projected[start : start + 100_000] = vectors[start : start + 100_000] @ basis
            rank, note = top, ""
            if settings.min_recall > 0 and key not in settings.ranks:
                queries = np.asarray(component.index_queries(index_name, RECALL_QUERIES), dtype=np.float32)
                for rank in [*range(MIN_RANK, top, 16), top]:  # the columns are in descending order
                    recall = shortlist_recall(vectors, projected[:, :rank], basis[:, :rank], queries,
                                              settings.shortlist)  # fmt: skip
                    if recall >= settings.min_recall:
                        break
                note = f" (recall@{RECALL_AT} {recall:.4f}, {settings.min_recall} wanted)"
                if recall < settings.min_recall:
                    log(f"low-rank {part or 'index'} {key}: kept exact{note}")
                    continue
            arrays = (np.ascontiguousarray(projected[:, :rank]), np.ascontiguousarray(basis[:, :rank]))
            for file, array in zip(lowrank_files(name, index_name, part), arrays, strict=True):
                np.save(folder / file, array)
            chosen[key] = rank
            log(f"low-rank {part or 'index'} {key}: {n:,} x {d} -> {rank}{note}, "
                f"{time.perf_counter() - started:.1f}s")  # fmt: skip
    return chosen


class LowRankIndex:
    """Shortlist by the projected inner product, then the exact index on the shortlist.
    ``items``: the item of each projected row, sorted (an IVF index's head); None: row i is
    item i."""

    def __init__(
        self,
        projected: np.ndarray,
        basis: np.ndarray,
        exact: VectorIndex,
        shortlist: int,
        items: np.ndarray | None = None,
    ) -> None:
        self.projected, self.basis, self.exact, self.shortlist = projected, basis, exact, shortlist
        self.items = items

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        size = shortlist_size(self.shortlist, n)
        rows = None if allowed is None else self._rows(np.asarray(allowed, dtype=np.int64))
        if rows is not None and len(rows) <= size:
            return self.exact.search(query, n, self._items(rows))
        projected = self.projected if rows is None else self.projected[rows]
        approx = projected @ (np.asarray(query, dtype=np.float32) @ self.basis)
        if len(approx) <= size:
            short = np.arange(len(approx), dtype=np.int64)
        else:
            short = np.sort(largest(approx, size)).astype(np.int64)
        return self.exact.search(query, n, self._items(short if rows is None else rows[short]))

    def _rows(self, allowed: np.ndarray) -> np.ndarray:
        if self.items is None:
            return allowed
        return np.flatnonzero(member(self.items, allowed))

    def _items(self, rows: np.ndarray) -> np.ndarray:
        return rows if self.items is None else self.items[rows]


def attach_lowrank(
    components: Mapping[str, Any], folder: Path, settings: LowRankSettings, files: Collection[str]
) -> None:
    """Wrap each exact index that has projection files among ``files`` (memory-mapped)."""
    for name, component in components.items():
        for index_name in component.index_names:
            rows_file, basis_file = lowrank_files(name, index_name)
            if rows_file in files:
                projected = np.load(folder / rows_file, mmap_mode="r")
                basis = np.load(folder / basis_file)
                exact = component.indexes[index_name]
                component.indexes[index_name] = LowRankIndex(
                    np.asarray(projected), basis, exact, settings.shortlist
                )


class BoundedHead:
    """The exact head of a biased inner-product index (``[e | b] . [u | 1] = u e + b``, the
    VAE decoder's score), scanned in blocks of decreasing bias that double in size, stopping
    once no later block can reach the n-th best score found: an item scores at most
    ``|u| |e_i| + b_i`` (Cauchy-Schwarz). Exact (the faiss head it replaces is 8-bit under
    ``sq8``); what it saves depends on how far the biases spread against ``|u| |e|``. On the
    synthetic 1M artifact ~780 of its 10,000 head items can reach a top 200, the median query
    reads 2 of 6 blocks (768 rows), and the head costs 80 us instead of faiss's 249 us
    (docs/benchmarks.md). It holds its own float32 copy of the head's rows, in bias order
    (10,000 x 200: 8 MB a process)."""

    FIRST_BLOCK = 256

    def __init__(self, emb: np.ndarray, bias: np.ndarray, items: np.ndarray) -> None:
        items = np.asarray(items, dtype=np.int64)
        order = np.argsort(-np.asarray(bias[items], dtype=np.float64), kind="stable")
        self.items = items[order]
        self.emb = np.ascontiguousarray(np.asarray(emb[self.items], dtype=np.float32))
        self.bias = np.asarray(bias[self.items], dtype=np.float32)
        norms = np.linalg.norm(self.emb, axis=1)
        self.starts, size = [], self.FIRST_BLOCK
        start = 0
        while start < len(self.items):
            self.starts.append(start)
            start, size = start + size, 2 * size
        self.starts.append(len(self.items))
        blocks = list(zip(self.starts[:-1], self.starts[1:], strict=True))
        self.block_norm = np.array([norms[a:b].max() for a, b in blocks], dtype=np.float64)
        self.block_bias = np.array([self.bias[a] for a, _ in blocks], dtype=np.float64)  # its largest

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """The ``n`` best items of the head (best first) among ``allowed`` (sorted ids)."""
        query = np.asarray(query, dtype=np.float32)
        u, one = query[:-1], float(query[-1])
        keep = None if allowed is None else member(self.items, allowed)
        if one >= 0:  # the best any block from b on can score
            reach = np.maximum.accumulate(
                (float(np.linalg.norm(u)) * self.block_norm + one * self.block_bias)[::-1]
            )[::-1]
        else:
            reach = np.full(len(self.block_norm), np.inf)
        ids: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        found, threshold = 0, -np.inf
        for block, (a, b) in enumerate(zip(self.starts[:-1], self.starts[1:], strict=True)):
            if found >= n and reach[block] < threshold:
                break
            block_scores = self.emb[a:b] @ u + one * self.bias[a:b]
            block_ids = self.items[a:b]
            if keep is not None:
                block_scores, block_ids = block_scores[keep[a:b]], block_ids[keep[a:b]]
            ids.append(block_ids)
            scores.append(block_scores)
            found += len(block_ids)
            if found >= n:
                every = np.concatenate(scores)
                threshold = float(np.partition(every, len(every) - n)[len(every) - n])
        if not ids:
            return np.zeros(0, dtype=np.int64)
        every_ids, every = np.concatenate(ids), np.concatenate(scores)
        return every_ids[best(every, n)].astype(np.int64)


def attach(
    components: Mapping[str, Any],
    folder: Path,
    settings: IVFSettings,
    popular_order: np.ndarray,
    lowrank: LowRankSettings | None = None,
    files: Collection[str] = (),
) -> None:
    """Give every component its IVF indexes from the artifact folder (in place of exact), each
    head shortlisted by its projection when ``files`` hold one (memory-mapped)."""
    head = head_items(popular_order, settings.head)
    for name, component in components.items():
        for index_name in component.index_names:
            exact = component.indexes.get(index_name)
            rows_file, basis_file = lowrank_files(name, index_name, "head")
            shortlisted: LowRankIndex | BoundedHead | None = None
            if lowrank is not None and rows_file in files:
                projected = np.asarray(np.load(folder / rows_file, mmap_mode="r"))
                basis = np.load(folder / basis_file)
                shortlisted = LowRankIndex(projected, basis, exact, lowrank.shortlist, head)
            elif hasattr(exact, "bounded_head"):  # a biased inner product (the VAE's MIPS)
                shortlisted = exact.bounded_head(head)
            prefix = f"{name}.{index_name}"
            component.indexes[index_name] = IVFIndex(folder, prefix, settings, exact, shortlisted)


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise RuntimeError("this artifact has approximate indexes: pip install faiss-cpu") from exc
    return faiss
