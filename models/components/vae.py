"""Mult-VAE: selection trains with early stopping on validation NDCG@100 and keeps the best
epoch; refit trains that many epochs on every user, with the same KL annealing schedule.

Items without training interactions get their decoder row from the content -> CF map (fitted
on the items that have some), so they can be recommended; their encoder rows are zero.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from app.scoring.features import content_to_cf
from models.components.base import Fitted, Log, TrainData, warm
from models.config import TrainConfig
from models.item_ae import fit_content_to_cf
from models.metrics import ndcg_at_k
from models.vae import MultVAE, plan_epochs, train_vae, vae_logits


class VAETrainer:
    name = "vae"

    def select(self, data: TrainData, config: TrainConfig, shared: dict[str, Any], log: Log) -> Fitted:
        started = time.perf_counter()
        train = data.train
        epochs, patience = plan_epochs(config.vae, n_users=train.shape[0])
        model, history, best_epoch = train_vae(
            train / data.max_weight,
            config.vae,
            epochs=epochs,
            patience=patience,
            validate=lambda m: validation_ndcg(m, data.val_foldin, data.val_target),
            log=log,
        )
        arrays = export(model, data, train, shared, config)
        report = {
            "history": history,
            "best_epoch": best_epoch,
            "planned_epochs": epochs,
            "patience": patience,
            "seconds": time.perf_counter() - started,
        }
        shared["vae_model"] = model  # the Keras/numpy parity test reads it
        return Fitted(arrays=arrays, chosen={"epochs": best_epoch, "anneal_epochs": epochs}, report=report)

    def refit(
        self, data: TrainData, config: TrainConfig, chosen: dict[str, Any], shared: dict[str, Any], log: Log
    ) -> dict[str, np.ndarray]:
        model, _, _ = train_vae(
            data.full / data.max_weight,
            config.vae,
            epochs=chosen["epochs"],
            anneal_epochs=chosen["anneal_epochs"],
            log=log,
        )
        return export(model, data, data.full, shared, config)


def export(
    model: MultVAE, data: TrainData, trained_on: sp.csr_matrix, shared: dict[str, Any], config: TrainConfig
) -> dict[str, np.ndarray]:
    """The serving arrays: encoder and decoder weights, cold items' decoder rows from the
    content map, and an empty ``user_emb`` (filled by the pipeline for the known users)."""
    arrays = model.export_arrays()
    seen = warm(trained_on)
    # Encoder rows of items never seen as input hold their random initialisation: zero them.
    arrays["enc_w1"][~seen] = 0.0
    content = shared["content_emb"]
    arrays["content_to_cf"] = fit_content_to_cf(
        content[seen], arrays["item_emb"][seen], arrays["item_bias"][seen], l2=config.item_ae.mapping_l2
    )
    emb, bias = content_to_cf(content[~seen], arrays)
    arrays["item_emb"][~seen], arrays["item_bias"][~seen] = emb, bias
    arrays["item_norm"] = np.linalg.norm(arrays["item_emb"], axis=1).astype(np.float32)
    arrays["user_emb"] = np.zeros((0, arrays["item_emb"].shape[1]), np.float32)
    return arrays


def validation_ndcg(model: MultVAE, foldin: sp.csr_matrix, target: sp.csr_matrix) -> float:
    """Validation NDCG@100 of the Keras model in its scoring mode (posterior mean)."""
    from models.evaluation import rank

    rows = np.flatnonzero(np.diff(target.indptr) > 0)
    scores = []
    for start in range(0, len(rows), 1000):
        batch = foldin[rows[start : start + 1000]]
        logits = vae_logits(model, batch)
        scores.append(ndcg_at_k(rank(logits, batch), target[rows[start : start + 1000]], 100))
    return float(np.concatenate(scores).mean()) if scores else 0.0
