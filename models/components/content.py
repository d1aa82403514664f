"""Content: the item autoencoder on item features. It sees no users, so it is trained once;
selection and refit share its arrays."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from app.scoring.features import encode_content
from models.components.base import Fitted, Log, TrainData
from models.config import TrainConfig
from models.item_ae import train_item_autoencoder


class ContentTrainer:
    name = "content"

    def select(self, data: TrainData, config: TrainConfig, shared: dict[str, Any], log: Log) -> Fitted:
        started = time.perf_counter()
        arrays, losses = train_item_autoencoder(data.features, config.item_ae, log=log)
        # Centre the codes (folded into the encoder's last bias, so items added later are
        # centred alike): raw codes share a large common part, and every cosine was ~0.99.
        arrays["feat_b2"] = arrays["feat_b2"] - encode_content(data.features, arrays).mean(axis=0)
        codes = encode_content(data.features, arrays)
        # Unit rows: a dot product is a cosine (profiles, similar items, the content -> CF map).
        arrays["content_emb"] = codes / np.maximum(np.linalg.norm(codes, axis=1, keepdims=True), 1e-12)
        shared["content_emb"], shared["content_arrays"] = arrays["content_emb"], arrays
        report = {"losses": losses, "seconds": time.perf_counter() - started}
        return Fitted(arrays=arrays, chosen={}, report=report)

    def refit(
        self, data: TrainData, config: TrainConfig, chosen: dict[str, Any], shared: dict[str, Any], log: Log
    ) -> dict[str, np.ndarray]:
        return dict(shared["content_arrays"])
