"""Item-item at scale: EASE with a sparse approximate inverse (SANSA: Spišák et al., "Scalable
Approximate NonSymmetric Autoencoder for Collaborative Filtering", RecSys 2023; the ``sansa``
package, the ``scale`` extra, which needs SuiteSparse), so memory grows with the nonzeros of
X^T X, not with items^2.

The Gram matrix is built sparse with the same variants as models/ease.py where they stay
sparse: users weighted by |u|^-a, EDLAE's dropout emphasis on the diagonal, and a history cap
(a random ``history_cap`` of a longer history's items: X^T X grows with the square of history
lengths, and a few very long histories would dominate it). Item attributes (alpha A A^T) are
left out: items sharing a category form dense blocks. SANSA returns B ~ W1 W2 (two sparse
factors); serving reads one CSR, so their product is kept to each item's ``neighbors`` largest
weights, row block by row block.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

Log = Callable[[str], None]


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


def sparse_gram(train: sp.csr_matrix, *, user_exponent: float, dropout: float, cap: int) -> sp.csr_matrix:
    """(n_items, n_items) CSR X^T D X, the EDLAE term added to its diagonal."""
    x = cap_histories(train, cap)
    if user_exponent:
        lengths = np.maximum(np.diff(x.indptr), 1).astype(np.float32)
        x = sp.csr_matrix(sp.diags(lengths**-user_exponent) @ x)
    g = sp.csr_matrix(x.T @ x, dtype=np.float32)
    if user_exponent:  # keep the diagonal's mean, so lambda keeps its scale
        plain = float(x.count_nonzero()) / max(g.shape[0], 1)
        g *= np.float32(plain / max(float(g.diagonal().mean()), 1e-12))
    if dropout:
        g = g + sp.diags(np.float32(dropout / (1.0 - dropout)) * g.diagonal())
    return sp.csr_matrix(g)


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
) -> sp.csr_matrix:
    """B (n_items, n_items) CSR, zero rows and columns for items without interactions."""
    from sansa import SANSA, ICFGramianFactorizerConfig, SANSAConfig, UMRUnitLowerTriangleInverterConfig

    _int64_transpose_shim()
    n_items = train.shape[1]
    warm = np.flatnonzero(np.asarray((train > 0).sum(axis=0)).ravel() > 0)
    # SANSA fails on an item column with no interactions: fit on the warm items only.
    g = sparse_gram(train[:, warm], user_exponent=user_exponent, dropout=dropout, cap=cap)
    log(f"item-item (SANSA): Gram {g.shape[0]:,} x {g.shape[0]:,} items, {g.nnz:,} nonzeros")
    config = SANSAConfig(
        l2=lam,
        weight_matrix_density=density,
        gramian_factorizer_config=ICFGramianFactorizerConfig(),
        lower_triangle_inverter_config=UMRUnitLowerTriangleInverterConfig(scans=1, finetune_steps=5),
    )
    model = SANSA(config)
    model.fit(g, compute_gramian=False)
    w1, w2 = (sp.csr_matrix(w, dtype=np.float32) for w in model.weights)
    product = _product_top(w1, w2, neighbors)
    # Back to the full item index: rows and columns of warm items.
    coo = product.tocoo()
    return sp.csr_matrix(
        (coo.data, (warm[coo.row], warm[coo.col])), shape=(n_items, n_items), dtype=np.float32
    )


def _product_top(
    w1: sp.csr_matrix, w2: sp.csr_matrix, neighbors: int, budget: int = 20_000_000
) -> sp.csr_matrix:
    """W1 @ W2 without the diagonal, each row's ``neighbors`` largest weights by magnitude,
    computed in blocks of rows whose product has at most ``budget`` nonzeros (an upper bound
    per row: the nonzeros of the W2 rows it combines, at most the width). The factors' rows
    are skewed: on a 179k-item shop fixed blocks of 20k rows went past 24 GB."""
    parts = []
    for start, end in product_blocks(w1, w2, budget):
        rows = sp.csr_matrix(w1[start:end] @ w2)
        _zero_diagonal(rows, start)
        rows.eliminate_zeros()
        parts.append(top_per_row(rows, neighbors))
    return sp.csr_matrix(sp.vstack(parts))


def product_blocks(w1: sp.csr_matrix, w2: sp.csr_matrix, budget: int) -> list[tuple[int, int]]:
    """Consecutive (start, end) row ranges of W1 whose product with W2 stays under ``budget``
    nonzeros by the per-row bound (a row over budget alone is its own block)."""
    pattern = sp.csr_matrix((np.ones(w1.nnz), w1.indices, w1.indptr), shape=w1.shape)
    bound = np.minimum(pattern @ np.diff(w2.indptr).astype(np.float64), w2.shape[1])
    blocks, start, total = [], 0, 0.0
    for row, size in enumerate(bound):
        if total + size > budget and row > start:
            blocks.append((start, row))
            start, total = row, 0.0
        total += size
    blocks.append((start, w1.shape[0]))
    return blocks


def _zero_diagonal(rows: sp.csr_matrix, start: int) -> None:
    for r in range(rows.shape[0]):
        lo, hi = rows.indptr[r], rows.indptr[r + 1]
        rows.data[lo:hi][rows.indices[lo:hi] == start + r] = 0.0


def top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's ``k`` entries of largest magnitude."""
    indptr, data = matrix.indptr, matrix.data
    keep = np.zeros(len(data), dtype=bool)
    for r in range(matrix.shape[0]):
        lo, hi = indptr[r], indptr[r + 1]
        if hi - lo <= k:
            keep[lo:hi] = True
        else:
            keep[lo + np.argpartition(-np.abs(data[lo:hi]), k - 1)[:k]] = True
    coo = matrix.tocoo()
    return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=matrix.shape)
