"""Metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from models.metrics import coverage_at_k, ndcg_at_k, recall_at_k


def targets(rows, n_items=10):
    data = [(u, i) for u, items in enumerate(rows) for i in items]
    r, c = zip(*data, strict=True)
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))


def test_recall_divides_by_min_k_and_targets():
    ranked = np.array([[1, 2, 3], [4, 5, 6]])
    t = targets([[2, 9], [7, 8, 9, 0]])
    # user 0: 1 hit of min(2, 2) targets; user 1: 0 hits.
    assert recall_at_k(ranked, t, 2).tolist() == [0.5, 0.0]


def test_ndcg_hand_computed():
    ranked = np.array([[1, 2, 3]])
    t = targets([[2, 3]])
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at_k(ranked, t, 3)[0] == pytest.approx(dcg / idcg)


def test_perfect_ranking_scores_one_and_padding_never_hits():
    ranked = np.array([[5, -1, -1]])
    t = targets([[5]])
    assert ndcg_at_k(ranked, t, 3)[0] == pytest.approx(1.0)
    assert recall_at_k(np.array([[-1, -1]]), targets([[0]]), 2)[0] == 0.0


def test_coverage_counts_distinct_items():
    assert coverage_at_k(np.array([[1, 2], [2, 3]]), 10, 2) == 0.3
