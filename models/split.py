"""Index users and items and split users by strong generalization (Liang et al. 2018).

Validation and test users are removed from training; each keeps ``foldin_fraction`` of
their interactions as the history given to the model and the rest as targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.config import SplitConfig
from models.errors import DataError


@dataclass
class Split:
    item_ids: list[str]  # item index -> id
    user_ids: list[str]  # user index -> id, every cleaned user
    histories: sp.csr_matrix  # (n_users, n_items) float32 weights, every user's full history
    train_users: np.ndarray  # int user indices used to fit models
    val_users: np.ndarray
    test_users: np.ndarray
    val_foldin: sp.csr_matrix  # (n_val, n_items)
    val_target: sp.csr_matrix
    test_foldin: sp.csr_matrix
    test_target: sp.csr_matrix
    warm: np.ndarray  # (n_items,) bool: the item has training interactions

    @property
    def train(self) -> sp.csr_matrix:
        return self.histories[self.train_users]

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def build(
    interactions: pd.DataFrame,
    catalog_ids: list[str],
    config: SplitConfig,
    *,
    cold_items: set[str] | frozenset[str] = frozenset(),
) -> Split:
    """interactions: cleaned ``user_id, item_id, weight`` rows (one per pair).

    ``cold_items`` are kept out of every training row (cold-start experiments).
    """
    item_ids = list(dict.fromkeys([*interactions["item_id"].tolist(), *catalog_ids]))
    item_index = {item: i for i, item in enumerate(item_ids)}
    user_ids = list(dict.fromkeys(interactions["user_id"].tolist()))
    user_index = {user: u for u, user in enumerate(user_ids)}
    rows = interactions["user_id"].map(user_index).to_numpy()
    cols = interactions["item_id"].map(item_index).to_numpy()
    histories = sp.csr_matrix(
        (interactions["weight"].to_numpy(np.float32), (rows, cols)),
        shape=(len(user_ids), len(item_ids)),
        dtype=np.float32,
    )
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(user_ids))
    n_heldout = max(config.min_heldout_users, round(config.heldout_fraction * len(user_ids)))
    if 2 * n_heldout >= len(user_ids):
        raise DataError(
            f"only {len(user_ids)} users after cleaning: too few for a train/validation/test split"
        )
    val_users = np.sort(order[:n_heldout])
    test_users = np.sort(order[n_heldout : 2 * n_heldout])
    train_users = np.sort(order[2 * n_heldout :])

    cold_mask = np.zeros(len(item_ids), dtype=bool)
    cold_mask[[item_index[i] for i in cold_items if i in item_index]] = True
    train = histories[train_users]
    warm = (np.asarray((train != 0).sum(axis=0)).ravel() > 0) & ~cold_mask
    if cold_mask.any():
        histories = _drop_columns(histories, ~cold_mask, rows=train_users)
    val_foldin, val_target = _foldin_split(histories[val_users], warm, config, rng)
    test_foldin, test_target = _foldin_split(histories[test_users], warm, config, rng)
    return Split(
        item_ids=item_ids,
        user_ids=user_ids,
        histories=histories,
        train_users=train_users,
        val_users=val_users,
        test_users=test_users,
        val_foldin=val_foldin,
        val_target=val_target,
        test_foldin=test_foldin,
        test_target=test_target,
        warm=warm,
    )


def _drop_columns(matrix: sp.csr_matrix, keep: np.ndarray, *, rows: np.ndarray) -> sp.csr_matrix:
    """Zero the columns not in ``keep`` on the given rows only (training users)."""
    row_mask = np.zeros(matrix.shape[0], dtype=bool)
    row_mask[rows] = True
    coo = matrix.tocoo()
    drop = row_mask[coo.row] & ~keep[coo.col]
    return sp.csr_matrix(
        (coo.data[~drop], (coo.row[~drop], coo.col[~drop])), shape=matrix.shape, dtype=np.float32
    )


def _foldin_split(
    heldout: sp.csr_matrix, warm: np.ndarray, config: SplitConfig, rng: np.random.Generator
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per user: a random ``1 - foldin_fraction`` of items (at least one) become targets.

    Targets are restricted to warm items: a strong-generalization target the model never
    saw in training cannot be ranked by a collaborative model (Liang et al. drop them too).
    """
    heldout = heldout.tocsr()
    fold_rows, fold_cols, fold_data, target_rows, target_cols = [], [], [], [], []
    for u in range(heldout.shape[0]):
        start, end = heldout.indptr[u], heldout.indptr[u + 1]
        items, weights = heldout.indices[start:end], heldout.data[start:end]
        if len(items) < 2:
            fold_rows += [u] * len(items)
            fold_cols += items.tolist()
            fold_data += weights.tolist()
            continue
        n_target = max(1, round((1 - config.foldin_fraction) * len(items)))
        is_target = np.zeros(len(items), dtype=bool)
        is_target[rng.choice(len(items), size=n_target, replace=False)] = True
        fold_rows += [u] * int((~is_target).sum())
        fold_cols += items[~is_target].tolist()
        fold_data += weights[~is_target].tolist()
        targets = items[is_target]
        targets = targets[warm[targets]]
        target_rows += [u] * len(targets)
        target_cols += targets.tolist()
    shape = heldout.shape
    foldin = sp.csr_matrix((fold_data, (fold_rows, fold_cols)), shape=shape, dtype=np.float32)
    target = sp.csr_matrix(
        (np.ones(len(target_rows), np.float32), (target_rows, target_cols)),
        shape=shape,
        dtype=np.float32,
    )
    return foldin, target
