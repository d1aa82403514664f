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
lengths, and a few very long histories would dominate it). Item attributes (alpha A A^T, the
collective EASE of models/ease.py) are not added to the sparse Gram, where items sharing a
category would form dense blocks: the local solver sums them into each neighbourhood's block
(``fit_local``), SANSA leaves them out. SANSA returns B ~ W1 W2 (two sparse
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
    attributes: sp.csr_matrix | None = None,
    alpha: float = 0.0,
    attribute_neighbors: int = 0,
    attribute_max_df: int = 2000,
) -> sp.csr_matrix:
    """B (n_items, n_items) CSR from one ridge solve per item over its ``local_neighbors``
    strongest co-occurring items; each row then keeps its ``neighbors`` largest weights.

    With ``alpha`` > 0 and ``attributes`` A (n_items, n_attributes), each solve uses the
    collective Gram G + alpha A A^T of models/ease.py on its neighbourhood (EDLAE's dropout
    emphasis on the combined diagonal, as the exact fit does), and the neighbourhood gains the
    ``attribute_neighbors`` items that share most attributes with the item (among attributes
    carried by at most ``attribute_max_df`` items; ties: the more popular first) and are not
    already among its co-occurring ones: the items the attribute term ties it to, which rarely
    co-occur with it. A A^T is never formed: each neighbourhood's block is summed attribute by
    attribute."""
    g = sparse_gram(train, user_exponent=user_exponent, dropout=dropout, cap=cap, min_count=min_count)
    g.sort_indices()
    n = g.shape[0]
    m = max(1, local_neighbors)
    use_attributes = bool(alpha) and attributes is not None and attributes.shape[1] > 0
    extra = max(0, attribute_neighbors) if use_attributes else 0
    width = m + extra
    described = f", alpha {alpha:g} with {extra} attribute neighbours" if use_attributes else ""
    log(
        f"item-item (local EASE): Gram {n:,} x {n:,} items, {g.nnz:,} nonzeros, "
        f"{m} neighbours per item{described}"
    )
    a_csr = sp.csr_matrix(attributes if use_attributes else sp.csr_matrix((n, 0)), dtype=np.float64)
    a_csr.sort_indices()
    # Candidate groups: the members of each attribute carried by at most attribute_max_df
    # items (an attribute of half the catalog ties an item to nothing in particular).
    members = sp.csc_matrix((a_csr != 0).astype(np.int8))
    members.sort_indices()
    df = np.diff(members.indptr)
    small = (df <= attribute_max_df) & bool(extra)
    c_ptr = np.concatenate([[0], np.cumsum(np.where(small, df, 0))]).astype(np.int64)
    c_idx = members.indices[np.repeat(small, df)].astype(np.int64)
    popularity = g.diagonal().astype(np.float64)
    rows = np.empty(n * width, np.int32)
    values = np.empty(n * width, np.float32)
    counts = np.zeros(n, np.int64)
    indptr, indices = g.indptr.astype(np.int64), g.indices.astype(np.int64)
    block = 50_000
    from models.progress import StepProgress

    progress = StepProgress("item-item local solves", epochs=1, steps=max(1, -(-n // block)), log=log)
    scratch = (
        np.full(n, -1, np.int64),
        np.zeros(n, np.int64),
        np.empty(n, np.int64),
        np.zeros(a_csr.shape[1], np.float64),
    )
    for b, start in enumerate(range(0, n, block)):
        _local_kernel()(
            start, min(start + block, n), indptr, indices, g.data.astype(np.float64), np.float64(lam), m,
            a_csr.indptr.astype(np.int64), a_csr.indices.astype(np.int64), a_csr.data,
            c_ptr, c_idx, popularity,
            np.float64(alpha if use_attributes else 0.0), np.float64(1.0 / (1.0 - dropout)), extra,
            rows, values, counts, *scratch,
        )  # fmt: skip
        progress.tick(1, b + 1)
    # Column j's weights are rows[j*width : j*width + counts[j]]: B[rows, j].
    take = (np.arange(width)[None, :] < counts[:, None]).ravel()
    cols = np.repeat(np.arange(n, dtype=np.int32), counts)
    b = sp.csr_matrix((values[take], (rows[take], cols)), shape=(n, n))
    b.sort_indices()
    return cap_rows(b, neighbors)


@functools.cache
def _local_kernel() -> Callable[..., None]:
    import numba

    # _local_solves calls the attribute block through this module's global name, which
    # numba resolves when it compiles: the compiled function must be there first.
    global _attribute_block
    _attribute_block = numba.njit(nogil=True)(_add_attribute_block)
    return numba.njit(nogil=True)(_local_solves)


def _local_solves(  # type: ignore[no-untyped-def]
    start, end, indptr, indices, data, lam, m, a_ptr, a_idx, a_val, c_ptr, c_idx, popularity,
    alpha, emphasis, extra, out_rows, out_vals, counts, position, shared, touched, attr_value,
):  # fmt: skip
    width = m + extra
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
        if c == 0 or popularity[j] <= 0:  # no interactions to learn item j's column from
            counts[j] = 0
            continue
        order = np.argsort(-weight[:c], kind="mergesort")
        k_co = min(m, c)
        hood = np.empty(k_co + extra, np.int64)
        hood[:k_co] = cand[order[:k_co]]
        k = k_co
        if extra:
            for a in range(k_co):
                position[hood[a]] = a  # marks the co-occurring neighbours
            n_touched = 0
            for p in range(a_ptr[j], a_ptr[j + 1]):
                t = a_idx[p]
                for q in range(c_ptr[t], c_ptr[t + 1]):
                    i = c_idx[q]
                    if i == j or position[i] >= 0 or popularity[i] <= 0:
                        continue
                    if shared[i] == 0:
                        touched[n_touched] = i
                        n_touched += 1
                    shared[i] += 1
            if n_touched:
                found = touched[:n_touched].copy()
                # Most shared attributes first, then the more popular, then the lower id.
                key = np.empty(n_touched, np.float64)
                for a in range(n_touched):
                    key[a] = -(shared[found[a]] * 1e12 + popularity[found[a]])
                picked = found[np.argsort(key, kind="mergesort")[: min(extra, n_touched)]]
                hood[k : k + len(picked)] = picked
                k += len(picked)
                for a in range(n_touched):
                    shared[found[a]] = 0
            for a in range(k_co):
                position[hood[a]] = -1
        hood = np.sort(hood[:k])
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
        if alpha:
            _attribute_block(j, hood, k, a_ptr, a_idx, a_val, alpha, emphasis, mat, rhs, attr_value)
        for a in range(k):
            position[hood[a]] = -1
        w = np.linalg.solve(mat, rhs)
        base = j * width
        for a in range(k):
            out_rows[base + a] = hood[a]
            out_vals[base + a] = w[a]
        counts[j] = k


def _add_attribute_block(j, hood, k, a_ptr, a_idx, a_val, alpha, emphasis, mat, rhs, attr_value):  # type: ignore[no-untyped-def]
    """alpha A A^T on the neighbourhood (the diagonal times EDLAE's emphasis 1 / (1 - p)) and
    alpha A[hood] A[j]^T on the right-hand side, summed attribute by attribute."""
    for p in range(a_ptr[j], a_ptr[j + 1]):
        attr_value[a_idx[p]] = a_val[p]
    total = 0
    for a in range(k):
        total += a_ptr[hood[a] + 1] - a_ptr[hood[a]]
    attr = np.empty(total, np.int64)
    member = np.empty(total, np.int64)
    value = np.empty(total, np.float64)
    e = 0
    for a in range(k):
        i = hood[a]
        for p in range(a_ptr[i], a_ptr[i + 1]):
            attr[e], member[e], value[e] = a_idx[p], a, a_val[p]
            rhs[a] += alpha * a_val[p] * attr_value[a_idx[p]]
            mat[a, a] += alpha * emphasis * a_val[p] * a_val[p]
            e += 1
    for p in range(a_ptr[j], a_ptr[j + 1]):
        attr_value[a_idx[p]] = 0.0
    order = np.argsort(attr, kind="mergesort")
    lo = 0
    while lo < total:
        hi = lo
        while hi < total and attr[order[hi]] == attr[order[lo]]:
            hi += 1
        for x in range(lo, hi):
            for y in range(x + 1, hi):
                u, v = member[order[x]], member[order[y]]
                add = alpha * value[order[x]] * value[order[y]]
                mat[u, v] += add
                mat[v, u] += add
        lo = hi


_attribute_block = _add_attribute_block  # replaced by its compiled version in _local_kernel


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
