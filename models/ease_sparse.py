"""Item-item at scale: EASE whose memory grows with the nonzeros of X^T X, not with items^2,
by one of two solvers (``ease.sparse_solver``):

- ``local`` (the default): EASE column by column on each item's neighbourhood. EASE's column
  j is the ridge regression of item j on every other item, b_j = (G_-j,-j + Lambda)^-1 G_-j,j
  (Steck 2019, the constraint diag(B) = 0 dropping item j itself); restricted to the
  ``local_neighbors`` items that co-occur most with j (the sparse Gram's largest entries of
  row j) it is a small dense solve per item, in compiled code: time items x m^3 / 3, memory
  the result's (items x m). The neighbourhood regression of SLIM's fsSLIM (Ning & Karypis
  2011), with EASE's closed form and EDLAE's dropout emphasis. On Beauty's validation users
  it beat the exact inverse (NDCG@100 0.1140 with m 100, 0.1152 with 300, exact 0.1129),
  where SANSA reached 0.1036 (docs/scaling.md).
- ``sansa``: a sparse approximate inverse (SANSA: Spišák et al., "Scalable Approximate
  NonSymmetric Autoencoder for Collaborative Filtering", RecSys 2023; the ``sansa`` package,
  the ``scale`` extra, which needs SuiteSparse).

The Gram matrix is built sparse with the same variants as models/ease.py where they stay
sparse: users weighted by |u|^-a, EDLAE's dropout emphasis on the diagonal, and a history cap
(a random ``history_cap`` of a longer history's items: X^T X grows with the square of history
lengths, and a few very long histories would dominate it). Item attributes (alpha A A^T) are
left out: items sharing a category form dense blocks. SANSA returns B ~ W1 W2 (two sparse
factors); serving reads one CSR, so their product is kept to each item's ``neighbors`` largest
weights, computed row by row in compiled code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

Log = Callable[[str], None]

# Each W2 row's largest weights kept before the product (product_top): on Sports a cap of
# 200 halved the product's work at the same validation NDCG@100 (0.0706 against 0.0707).
ROW_CAP = 1000


def available() -> bool:
    try:
        import sansa  # noqa: F401
    except ImportError:
        return False
    return True


def cap_histories(train: sp.csr_matrix, cap: int, seed: int = 0) -> sp.csr_matrix:
    """Binary rows keeping at most ``cap`` items per user (a random subset of longer rows)."""
    binary = sp.csr_matrix((train > 0).astype(np.float32))
    lengths = np.diff(binary.indptr)
    long_rows = np.flatnonzero(lengths > cap)
    if not len(long_rows):
        return binary
    rng = np.random.default_rng(seed)
    keep = np.ones(binary.nnz, dtype=bool)
    for row in long_rows:
        start, end = binary.indptr[row], binary.indptr[row + 1]
        drop = rng.choice(end - start, size=end - start - cap, replace=False)
        keep[start + drop] = False
    coo = binary.tocoo()
    return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=binary.shape)


def sparse_gram(
    train: sp.csr_matrix, *, user_exponent: float, dropout: float, cap: int, min_count: float = 1.0
) -> sp.csr_matrix:
    """(n_items, n_items) CSR X^T D X, the EDLAE term added to its diagonal; off-diagonal
    entries under ``min_count`` (co-occurrences: two items in fewer shoppers' histories) are
    dropped. Most pairs of a large catalog co-occur once, and SANSA's factorisation costs
    memory in proportion to the Gram's nonzeros."""
    x = cap_histories(train, cap)
    if user_exponent:
        lengths = np.maximum(np.diff(x.indptr), 1).astype(np.float32)
        x = sp.csr_matrix(sp.diags(lengths**-user_exponent) @ x)
    g = sp.csr_matrix(x.T @ x, dtype=np.float32)
    plain = float(x.count_nonzero()) / max(g.shape[0], 1)  # the unweighted diagonal's mean
    del x
    if min_count > 1:
        coo = g.tocoo()
        keep = (coo.data >= min_count) | (coo.row == coo.col)
        g = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=g.shape)
        del coo, keep
    if user_exponent:  # keep the diagonal's mean, so lambda keeps its scale
        g *= np.float32(plain / max(float(g.diagonal().mean()), 1e-12))
    if dropout:
        g = g + sp.diags(np.float32(dropout / (1.0 - dropout)) * g.diagonal())
    return sp.csr_matrix(g)


def fit_local(
    train: sp.csr_matrix,
    *,
    lam: float,
    dropout: float,
    user_exponent: float,
    cap: int,
    neighbors: int,
    local_neighbors: int,
    log: Log,
    min_count: float = 1.0,
) -> sp.csr_matrix:
    """B (n_items, n_items) CSR from one ridge solve per item over its ``local_neighbors``
    strongest co-occurring items; each row then keeps its ``neighbors`` largest weights."""
    g = sparse_gram(train, user_exponent=user_exponent, dropout=dropout, cap=cap, min_count=min_count)
    g.sort_indices()
    n = g.shape[0]
    m = max(1, local_neighbors)
    log(f"item-item (local EASE): Gram {n:,} x {n:,} items, {g.nnz:,} nonzeros, {m} neighbours per item")
    rows = np.empty(n * m, np.int32)
    values = np.empty(n * m, np.float32)
    counts = np.zeros(n, np.int64)
    indptr, indices = g.indptr.astype(np.int64), g.indices.astype(np.int64)
    block = 50_000
    from models.progress import StepProgress

    progress = StepProgress("item-item local solves", epochs=1, steps=max(1, -(-n // block)), log=log)
    for b, start in enumerate(range(0, n, block)):
        _local_kernel()(
            start, min(start + block, n), indptr, indices, g.data.astype(np.float64), np.float64(lam), m,
            rows, values, counts, np.full(n, -1, np.int64),
        )  # fmt: skip
        progress.tick(1, b + 1)
    # Column j's weights are rows[j*m : j*m + counts[j]]: B[rows, j].
    take = (np.arange(m)[None, :] < counts[:, None]).ravel()
    cols = np.repeat(np.arange(n, dtype=np.int32), counts)
    b = sp.csr_matrix((values[take], (rows[take], cols)), shape=(n, n))
    b.sort_indices()
    return cap_rows(b, neighbors)


@functools.cache
def _local_kernel() -> Callable[..., None]:
    import numba

    return numba.njit(nogil=True)(_local_solves)


def _local_solves(start, end, indptr, indices, data, lam, m, out_rows, out_vals, counts, position):  # type: ignore[no-untyped-def]
    for j in range(start, end):
        lo, hi = indptr[j], indptr[j + 1]
        # Candidates: row j's off-diagonal entries, the m largest (ties: lower item first).
        cand = np.empty(hi - lo, np.int64)
        weight = np.empty(hi - lo, np.float64)
        c = 0
        for q in range(lo, hi):
            if indices[q] != j and data[q] > 0:
                cand[c] = indices[q]
                weight[c] = data[q]
                c += 1
        if c == 0:
            counts[j] = 0
            continue
        order = np.argsort(-weight[:c], kind="mergesort")
        k = min(m, c)
        hood = np.sort(cand[order[:k]])
        rhs = np.zeros(k, np.float64)
        for a in range(k):
            position[hood[a]] = a
        # G on the neighbourhood (and rhs = G[hood, j]): a short row is scanned against the
        # neighbourhood's positions, a long one (a popular item's) searched for each member.
        mat = np.zeros((k, k), np.float64)
        for a in range(k):
            i = hood[a]
            lo_i, hi_i = indptr[i], indptr[i + 1]
            if hi_i - lo_i <= 8 * (k + 1):
                for q in range(lo_i, hi_i):
                    col = indices[q]
                    if col == j:
                        rhs[a] = data[q]
                    else:
                        p = position[col]
                        if p >= 0:
                            mat[a, p] = data[q]
            else:
                row = indices[lo_i:hi_i]
                q = lo_i + np.searchsorted(row, j)
                if q < hi_i and indices[q] == j:
                    rhs[a] = data[q]
                for b in range(k):
                    q = lo_i + np.searchsorted(row, hood[b])
                    if q < hi_i and indices[q] == hood[b]:
                        mat[a, b] = data[q]
            mat[a, a] += lam
        for a in range(k):
            position[hood[a]] = -1
        w = np.linalg.solve(mat, rhs)
        base = j * m
        for a in range(k):
            out_rows[base + a] = hood[a]
            out_vals[base + a] = w[a]
        counts[j] = k


def _int64_transpose_shim() -> None:
    """sansa 1.1's factorization transposes its CSR input with ``A.T``, which scipy >= 1.15
    returns with int32 indices, and its numba kernel accepts int64 only: hand it the
    transpose as a CSC over the same arrays (exact: a CSR of A is a CSC of A^T) with int64
    indices."""
    from sansa.core import factorizers

    if getattr(factorizers.icf, "shoprec_shim", False):
        return
    original = factorizers.icf

    def icf(a: sp.spmatrix, **kwargs: object) -> sp.csc_matrix:
        if isinstance(a, sp.csr_matrix):
            a = sp.csc_matrix((a.data, a.indices, a.indptr), shape=a.shape[::-1])
        a.indices, a.indptr = a.indices.astype(np.int64), a.indptr.astype(np.int64)
        return original(a, **kwargs)

    icf.shoprec_shim = True  # type: ignore[attr-defined]
    factorizers.icf = icf


def fit_sansa(
    train: sp.csr_matrix,
    *,
    lam: float,
    dropout: float,
    user_exponent: float,
    density: float,
    cap: int,
    neighbors: int,
    log: Log,
    min_count: float = 1.0,
) -> sp.csr_matrix:
    """B (n_items, n_items) CSR, zero rows and columns for items without interactions."""
    from sansa import SANSA, ICFGramianFactorizerConfig, SANSAConfig, UMRUnitLowerTriangleInverterConfig

    _int64_transpose_shim()
    n_items = train.shape[1]
    warm = np.flatnonzero(np.asarray((train > 0).sum(axis=0)).ravel() > 0)
    # SANSA fails on an item column with no interactions: fit on the warm items only.
    g = sparse_gram(
        train[:, warm], user_exponent=user_exponent, dropout=dropout, cap=cap, min_count=min_count
    )
    log(f"item-item (SANSA): Gram {g.shape[0]:,} x {g.shape[0]:,} items, {g.nnz:,} nonzeros")
    config = SANSAConfig(
        l2=lam,
        weight_matrix_density=density,
        gramian_factorizer_config=ICFGramianFactorizerConfig(),
        # Fine-tuning steps each recompute the residual I - L M (items x nonzeros^2 entries, the
        # fit's peak memory): on Sports they left validation NDCG@100 unchanged (0.0707 with 0
        # and with 5), at 1M items the residual norm too (6.45e-7 -> 6.44e-7 in 5 steps).
        lower_triangle_inverter_config=UMRUnitLowerTriangleInverterConfig(scans=1, finetune_steps=0),
    )
    model = SANSA(config)
    model.fit(g, compute_gramian=False)
    w1, w2 = (sp.csr_matrix(w, dtype=np.float32) for w in model.weights)
    del model
    product = product_top(w1, w2, neighbors, row_cap=ROW_CAP, log=log)
    del w1, w2
    # Back to the full item index: rows and columns of warm items (``warm`` is sorted, so
    # each row's columns stay in order).
    counts = np.zeros(n_items, dtype=np.int64)
    counts[warm] = np.diff(product.indptr)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    indices = warm.astype(np.int32)[product.indices]
    return sp.csr_matrix((product.data, indices, indptr), shape=(n_items, n_items))


def product_top(
    w1: sp.csr_matrix,
    w2: sp.csr_matrix,
    neighbors: int,
    *,
    row_cap: int | None = None,
    block: int = 50_000,
    log: Log | None = None,
) -> sp.csr_matrix:
    """W1 @ W2 without the diagonal, each row's ``neighbors`` largest weights by magnitude, in
    compiled code (numba, a dependency of sansa): one row at a time into a dense accumulator
    (Gustavson's row-by-row product), its top weights kept, so memory is the result's and
    time is the product's multiply-adds. scipy's product of row blocks with a Python top-k per
    row did ~15k rows a minute on a 892k-item shop (an hour); this does the same in minutes.

    A row j of W2 is added to every product row r with W1[r, j] != 0, so the product costs
    sum_j nnz(W1[:, j]) nnz(W2[j]); SANSA's factors have a few very dense rows (popular items),
    which made that hours at 1M items. ``row_cap`` keeps each W2 row's ``row_cap`` largest
    weights first (an approximation: the dropped terms are each row's smallest)."""
    from models.progress import StepProgress

    n_rows, n_cols = w1.shape[0], w2.shape[1]
    w1, w2 = sp.csr_matrix(w1, dtype=np.float32), sp.csr_matrix(w2, dtype=np.float32)
    if row_cap is not None:
        w2 = cap_rows(w2, row_cap)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    # Upper bound of the result; pages never written are never resident.
    indices = np.empty(n_rows * min(neighbors, n_cols), dtype=np.int32)
    data = np.empty(len(indices), dtype=np.float32)
    scratch = (np.zeros(n_cols, np.float32), np.zeros(n_cols, np.bool_), np.empty(n_cols, np.int64))
    steps = max(1, -(-n_rows // block))
    progress = StepProgress("item-item product", epochs=1, steps=steps, log=log) if log else None
    for b, start in enumerate(range(0, n_rows, block)):
        end = min(start + block, n_rows)
        _compiled()(
            start, end, w1.indptr, w1.indices, w1.data, w2.indptr, w2.indices, w2.data,
            neighbors, indptr, indices, data, *scratch,
        )  # fmt: skip
        if progress:
            progress.tick(1, b + 1)
    nnz = int(indptr[-1])
    return sp.csr_matrix((data[:nnz], indices[:nnz], indptr), shape=(n_rows, n_cols))


def cap_rows(matrix: sp.csr_matrix, cap: int) -> sp.csr_matrix:
    """Each row's ``cap`` entries of largest magnitude (order within rows kept)."""
    lengths = np.diff(matrix.indptr)
    long_rows = np.flatnonzero(lengths > cap)
    if not len(long_rows):
        return matrix
    keep = np.ones(matrix.nnz, dtype=bool)
    for r in long_rows:
        lo, hi = matrix.indptr[r], matrix.indptr[r + 1]
        drop = np.argpartition(np.abs(matrix.data[lo:hi]), hi - lo - cap)[: hi - lo - cap]
        keep[lo + drop] = False
    indptr = np.concatenate([[0], np.cumsum(np.minimum(lengths, cap))])
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)


@functools.cache
def _compiled() -> Callable[..., None]:
    """The row kernel compiled once per process (numba is imported only when it is needed)."""
    import numba

    return numba.njit(nogil=True)(_rows_kernel)


def _rows_kernel(
    start, end, a_ptr, a_idx, a_val, b_ptr, b_idx, b_val, k, out_ptr, out_idx, out_val, acc, seen, touched
):  # type: ignore[no-untyped-def]
    for r in range(start, end):
        count = 0
        for p in range(a_ptr[r], a_ptr[r + 1]):
            j, a = a_idx[p], a_val[p]
            for q in range(b_ptr[j], b_ptr[j + 1]):
                c = b_idx[q]
                if c == r:
                    continue
                if not seen[c]:
                    seen[c] = True
                    touched[count] = c
                    count += 1
                acc[c] += a * b_val[q]
        cols = touched[:count]
        if count > k:
            magnitude = np.abs(acc[cols])
            threshold = np.partition(magnitude, count - k)[count - k]
            kept = np.empty(k, np.int64)
            n_kept = 0
            for c in cols:  # strictly above the threshold first, ties after, up to k
                if abs(acc[c]) > threshold:
                    kept[n_kept] = c
                    n_kept += 1
            for c in cols:
                if n_kept == k:
                    break
                if abs(acc[c]) == threshold:
                    kept[n_kept] = c
                    n_kept += 1
            cols = kept[:n_kept]
        cols = np.sort(cols)
        offset = out_ptr[r]
        for c in cols:
            if acc[c] != 0.0:
                out_idx[offset] = c
                out_val[offset] = acc[c]
                offset += 1
        out_ptr[r + 1] = offset
        for i in range(count):
            c = touched[i]
            acc[c] = 0.0
            seen[c] = False
