"""EASE closed form, attribute side information and sparsification."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models import ease


def test_ease_matches_the_closed_form():
    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((50, 8)) < 0.3).astype(np.float32))
    g = ease.gram(x)
    b = ease.fit_ease(g, 10.0)
    p = np.linalg.inv(g.astype(np.float64) + 10.0 * np.eye(8))
    expected = -p / np.diag(p)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(b, expected, atol=1e-5)
    assert np.all(np.diag(b) == 0)


def test_attributes_add_co_occurrence_and_cold_items_stay_zero():
    x = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    attributes = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)  # items 0 and 1 share one
    assert ease.gram(x)[0, 1] == 0 and ease.gram(x, attributes, 2.0)[0, 1] == 2.0
    b = ease.fit_ease(ease.gram(x, attributes, 2.0), 1.0, warm=np.array([True, True, False]))
    assert b[0, 1] > 0 and np.all(b[2] == 0) and np.all(b[:, 2] == 0)


def test_sparsify_keeps_the_largest_magnitudes_including_negative_ones():
    b = np.array([[0, 5, -9, 1], [2, 0, -1, 3], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=np.float32)
    kept = ease.sparsify(b, 2).toarray()
    np.testing.assert_array_equal(kept[0], [0, 5, -9, 0])
    np.testing.assert_array_equal(kept[1], [2, 0, 0, 3])
    assert not kept[2].any()


@pytest.mark.parametrize(
    ("curve", "fits"),
    [
        ({30: 0.30, 100: 0.35, 300: 0.33, 1000: 0.30}, 3),  # Beauty's shape: 1000 is never fitted
        ({30: 0.36, 100: 0.35, 300: 0.33, 1000: 0.30}, 3),  # the best at the low edge
        ({30: 0.20, 100: 0.25, 300: 0.33, 1000: 0.40}, 3),  # the best at the high edge
        ({100: 0.3}, 1),
    ],
)
def test_the_lambda_walk_finds_the_grids_best_in_fewer_fits(curve, fits):
    """On a unimodal validation curve the walk from the grid's middle ends at the grid's best
    lambda, fitting fewer lambdas than the grid has when the best is not two steps away."""
    from models.components.ease import Search
    from models.config import EASEConfig

    search = Search.__new__(Search)  # no data: the fits are replaced by the curve
    search.config = EASEConfig(lambdas=list(reversed(curve)), popularity_exponents=[0.0])
    search.tried = []

    def fit(params):
        search.tried.append({**params, "beta": 0.0, "ndcg@100": curve[params["lam"]]})
        return curve[params["lam"]]

    search._try = fit
    search._lambda_search({"lam": 0.0, "dropout": 0.0, "alpha": 0.0, "a": 0.0})
    best = max(search.tried, key=lambda row: row["ndcg@100"])
    assert best["lam"] == max(curve, key=curve.get)
    assert len(search.tried) == fits


def test_the_sparse_models_validation_is_scored_in_blocks_of_users():
    """Blocks of users (no users x items array at a large catalog) give the same NDCG as one
    block, for every popularity exponent."""
    from models.components.ease import batched_ndcg

    rng = np.random.default_rng(3)
    foldin = sp.random(60, 40, density=0.1, random_state=4, format="csr", dtype=np.float32)
    target = sp.random(60, 40, density=0.05, random_state=5, format="csr", dtype=np.float32)
    target.data[:] = 1.0
    b = sp.random(40, 40, density=0.2, random_state=6, format="csr", dtype=np.float32)
    popularity = rng.integers(0, 50, 40).astype(np.float32)
    whole = batched_ndcg(foldin, target, b, popularity, [0.0, 0.3])
    blocks = batched_ndcg(foldin, target, b, popularity, [0.0, 0.3], block=7)
    assert np.allclose(whole, blocks) and whole[0] != whole[1]
