"""The component seam, training side: each blend component chooses its settings on the
validation users (``select``), then is fitted again on every user with those settings
(``refit``); both return the arrays its serving side (``app/scoring/components``) reads.

The served artifact holds the refitted arrays; the selection ones score the validation users
(blend weights, the quality gate), which the refitted models have been trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from models.config import TrainConfig

Log = Callable[[str], None]


@dataclass
class TrainData:
    """Every user and item of the training file, and the selection split of its users.

    ``full`` (n_users, n_items) float32 event weights, one row per user. Selection fits on
    ``train_users`` and measures on ``val_users``, whose histories are split into a fold-in
    (given to the model) and targets (to find)."""

    item_ids: list[str]
    user_ids: list[str]
    full: sp.csr_matrix
    train_users: np.ndarray  # int user indices
    val_users: np.ndarray
    val_foldin: sp.csr_matrix  # (n_val, n_items)
    val_target: sp.csr_matrix
    features: sp.csr_matrix  # (n_items, feature_dim) float32 item features in [0, 1]
    max_weight: float  # the strongest event weight (targets of likelihoods are scaled by it)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def train(self) -> sp.csr_matrix:
        return self.full[self.train_users]

    @property
    def attributes(self) -> sp.csr_matrix:
        """(n_items, feature_dim - 2) CSR: multi-hot attributes and title words, not price."""
        return self.features[:, :-2]


def warm(matrix: sp.csr_matrix) -> np.ndarray:
    """(n_items,) bool: the item has at least one interaction in ``matrix``."""
    return np.asarray((matrix != 0).sum(axis=0)).ravel() > 0


@dataclass
class Fitted:
    arrays: dict[str, np.ndarray]  # named as the serving component reads them
    chosen: dict[str, Any]  # settings chosen on validation, given to refit
    report: dict[str, Any]  # grid, history, seconds: for the training report


class ComponentTrainer(Protocol):
    name: str

    def select(self, data: TrainData, config: TrainConfig, shared: dict[str, Any], log: Log) -> Fitted:
        """Fit on ``data.train``, choose settings on the validation users."""
        ...

    def refit(
        self, data: TrainData, config: TrainConfig, chosen: dict[str, Any], shared: dict[str, Any], log: Log
    ) -> dict[str, np.ndarray]:
        """Fit on ``data.full`` with the chosen settings."""
        ...
