"""EASE closed form, attribute side information and sparsification."""

from __future__ import annotations

import numpy as np
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
