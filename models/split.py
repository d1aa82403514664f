"""Index users and items, and hold users out by strong generalization (Liang et al. 2018).

Held-out users are unseen by the model they measure; each keeps ``foldin_fraction`` of their
items as the history given to the model and the rest as targets. Two levels use it:
- inside training, validation users choose the settings (then every model is refitted on
  all users of the training file, validation users included: :mod:`models.pipeline`);
- evaluation (``make eval``) holds test users out of the file before cleaning and training
  (:func:`hold_out_users`), and scores the exported artifact on their raw targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.config import SplitConfig
from models.data import DataError


@dataclass
class Index:
    item_ids: list[str]  # item index -> id
    user_ids: list[str]  # user index -> id
    full: sp.csr_matrix  # (n_users, n_items) float32 weights, one row per user


def index(interactions: pd.DataFrame, catalog_ids: list[str]) -> Index:
    """interactions: cleaned ``user_id, item_id, weight`` rows (one per pair). Items: those of
    the log, then catalog items nobody interacted with (cold, recommendable by content)."""
    item_ids = list(dict.fromkeys([*interactions["item_id"].tolist(), *catalog_ids]))
    item_index = {item: i for i, item in enumerate(item_ids)}
    user_ids = list(dict.fromkeys(interactions["user_id"].tolist()))
    user_index = {user: u for u, user in enumerate(user_ids)}
    rows = interactions["user_id"].map(user_index).to_numpy()
    cols = interactions["item_id"].map(item_index).to_numpy()
    full = sp.csr_matrix(
        (interactions["weight"].to_numpy(np.float32), (rows, cols)),
        shape=(len(user_ids), len(item_ids)),
        dtype=np.float32,
    )
    return Index(item_ids=item_ids, user_ids=user_ids, full=full)


def heldout_count(n_users: int, config: SplitConfig) -> int:
    return min(
        config.max_heldout_users, max(config.min_heldout_users, round(config.heldout_fraction * n_users))
    )


def choose_heldout(lengths: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``n`` users drawn among those with at least two items (a fold-in and
    a target); fewer when fewer qualify."""
    eligible = np.flatnonzero(lengths >= 2)
    return np.sort(rng.permutation(eligible)[:n])


def validation_split(
    full: sp.csr_matrix, config: SplitConfig
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix, sp.csr_matrix]:
    """(train users, validation users, validation fold-in, validation targets)."""
    rng = np.random.default_rng(config.seed)
    lengths = np.diff(full.indptr)
    val_users = choose_heldout(lengths, heldout_count(full.shape[0], config), rng)
    train_users = np.setdiff1d(np.arange(full.shape[0]), val_users)
    if len(val_users) == 0 or len(train_users) < len(val_users):
        raise DataError(
            f"only {full.shape[0]} users ({int((lengths >= 2).sum())} with two or more items) after "
            "cleaning: too few to choose settings on validation users; add data"
        )
    foldin, target = foldin_split(full[val_users], config.foldin_fraction, rng)
    return train_users, val_users, foldin, target


def foldin_split(
    heldout: sp.csr_matrix, foldin_fraction: float, rng: np.random.Generator
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per user: a random ``1 - foldin_fraction`` of items (at least one) become targets
    (binary); users with fewer than two items keep them all as fold-in."""
    heldout = heldout.tocsr()
    fold_rows, fold_cols, fold_data, target_rows, target_cols = [], [], [], [], []
    for u in range(heldout.shape[0]):
        start, end = heldout.indptr[u], heldout.indptr[u + 1]
        items, weights = heldout.indices[start:end], heldout.data[start:end]
        is_target = np.zeros(len(items), dtype=bool)
        if len(items) >= 2:
            n_target = max(1, round((1 - foldin_fraction) * len(items)))
            is_target[rng.choice(len(items), size=n_target, replace=False)] = True
        fold_rows += [u] * int((~is_target).sum())
        fold_cols += items[~is_target].tolist()
        fold_data += weights[~is_target].tolist()
        target_rows += [u] * int(is_target.sum())
        target_cols += items[is_target].tolist()
    shape = heldout.shape
    foldin = sp.csr_matrix((fold_data, (fold_rows, fold_cols)), shape=shape, dtype=np.float32)
    target = sp.csr_matrix(
        (np.ones(len(target_rows), np.float32), (target_rows, target_cols)), shape=shape, dtype=np.float32
    )
    return foldin, target


def hold_out_users(interactions: pd.DataFrame, config: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split raw interaction rows into (rows of the training file, rows of test users).

    Test users are drawn (seeded) among users with at least two distinct items, before any
    cleaning, so the training command never sees them."""
    users = interactions["user_id"]
    distinct = interactions.drop_duplicates(["user_id", "item_id"]).groupby("user_id").size()
    order = np.asarray(distinct.index, dtype=object)
    # A different stream than the validation split's, so the two draws are independent.
    rng = np.random.default_rng([config.seed, 1])
    picked = choose_heldout(distinct.to_numpy(), heldout_count(len(order), config), rng)
    test = users.isin(set(order[picked]))
    return interactions[~test], interactions[test]
