"""Mult-VAE: selection trains with early stopping on validation NDCG@100 and keeps the best
epoch; refit trains that many epochs on every user, with the same KL annealing schedule.

Items without training interactions get their decoder row from the content -> CF map (a ridge
regression from item features, fitted on the items that have some), so they can be
recommended; their encoder rows are zero.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from app.scoring.features import content_to_cf
from models.components.base import Fitted, Log, TrainData, warm
from models.config import ConfigError, TrainConfig, VAEConfig
from models.item_ae import fit_content_to_cf
from models.metrics import ndcg_at_k
from models.vae import MultVAE, plan_epochs, train_vae, vae_logits
from models.vae_sampled import SampledSettings, train_sampled_vae


class VAETrainer:
    name = "vae"

    def select(self, data: TrainData, config: TrainConfig, shared: dict[str, Any], log: Log) -> Fitted:
        started = time.perf_counter()
        train = data.train
        epochs, patience = plan_epochs(config.vae, n_users=train.shape[0])
        foldin, target = epoch_validation(data, config.vae, log)
        if sampled(config.vae, data.n_items):
            weights, history, best_epoch = train_sampled_vae(
                train / data.max_weight,
                config.vae,
                epochs=epochs,
                patience=patience,
                validate=lambda arrays: arrays_ndcg(arrays, foldin, target),
                settings=SampledSettings(negatives=config.vae.negatives),
                log=log,
            )
            arrays = export_arrays(weights, data, train, shared, config)
        else:
            model, history, best_epoch = train_vae(
                train / data.max_weight,
                config.vae,
                epochs=epochs,
                patience=patience,
                validate=lambda m: validation_ndcg(m, foldin, target),
                log=log,
            )
            shared["vae_model"] = model  # the Keras/numpy parity test reads it
            arrays = export(model, data, train, shared, config)
        report = {
            "history": history,
            "best_epoch": best_epoch,
            "planned_epochs": epochs,
            "patience": patience,
            "seconds": time.perf_counter() - started,
        }
        return Fitted(arrays=arrays, chosen={"epochs": best_epoch, "anneal_epochs": epochs}, report=report)

    def refit(
        self, data: TrainData, config: TrainConfig, chosen: dict[str, Any], shared: dict[str, Any], log: Log
    ) -> dict[str, np.ndarray]:
        if sampled(config.vae, data.n_items):
            weights, _, _ = train_sampled_vae(
                data.full / data.max_weight,
                config.vae,
                epochs=chosen["epochs"],
                anneal_epochs=chosen["anneal_epochs"],
                settings=SampledSettings(negatives=config.vae.negatives),
                log=log,
            )
            return export_arrays(weights, data, data.full, shared, config)
        model, _, _ = train_vae(
            data.full / data.max_weight,
            config.vae,
            epochs=chosen["epochs"],
            anneal_epochs=chosen["anneal_epochs"],
            log=log,
        )
        return export(model, data, data.full, shared, config)


def epoch_validation(data: TrainData, config: VAEConfig, log: Log) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The validation users early stopping scores each epoch: all of them, or a seeded sample
    of ``validation_scores / n_items`` (at least 1,000) when scoring all would cost more."""
    rows = np.flatnonzero(np.diff(data.val_target.indptr) > 0)
    keep = max(1000, config.validation_scores // max(data.n_items, 1))
    if len(rows) > keep:
        rows = np.sort(np.random.default_rng(config.seed).choice(rows, size=keep, replace=False))
        log(f"vae: early stopping on {keep:,} of the validation users (vae.validation_scores)")
    return data.val_foldin[rows], data.val_target[rows]


def sampled(config: VAEConfig, n_items: int) -> bool:
    if config.softmax not in ("auto", "full", "sampled"):
        raise ConfigError(f"vae.softmax must be auto, full or sampled, not {config.softmax!r}")
    return config.softmax == "sampled" or (config.softmax == "auto" and n_items >= config.sampled_above)


def export(
    model: MultVAE, data: TrainData, trained_on: sp.csr_matrix, shared: dict[str, Any], config: TrainConfig
) -> dict[str, np.ndarray]:
    return export_arrays(model.export_arrays(), data, trained_on, shared, config)


def export_arrays(
    arrays: dict[str, np.ndarray],
    data: TrainData,
    trained_on: sp.csr_matrix,
    shared: dict[str, Any],
    config: TrainConfig,
) -> dict[str, np.ndarray]:
    """The serving arrays: encoder and decoder weights, cold items' decoder rows from the
    content map, and an empty ``user_emb`` (filled by the pipeline for the known users)."""
    seen = warm(trained_on)
    # Encoder rows of items never seen as input hold their random initialisation: zero them.
    arrays["enc_w1"][~seen] = 0.0
    features = data.features
    counts = np.diff(trained_on.tocsc().indptr)[seen]
    arrays["content_to_cf"] = fit_content_to_cf(
        features[seen],
        arrays["item_emb"][seen],
        arrays["item_bias"][seen],
        l2=config.item_ae.mapping_l2,
        weights=np.minimum(counts / max(config.item_ae.mapping_full_weight, 1), 1.0),
    )
    emb, bias = content_to_cf(features[~seen], arrays)
    arrays["item_emb"][~seen], arrays["item_bias"][~seen] = emb, bias
    arrays["item_norm"] = np.linalg.norm(arrays["item_emb"], axis=1).astype(np.float32)
    arrays["user_emb"] = np.zeros((0, arrays["item_emb"].shape[1]), np.float32)
    return arrays


def arrays_ndcg(arrays: dict[str, np.ndarray], foldin: sp.csr_matrix, target: sp.csr_matrix) -> float:
    """Validation NDCG@100 of exported arrays, scored by the serving component (full softmax
    over every item, in batches)."""
    from app.scoring.components.vae import VAE
    from models.evaluation import rank

    n_items = arrays["item_emb"].shape[0]
    component = VAE(
        {
            **arrays,
            "popularity": np.zeros(n_items, np.float32),
            "item_norm": np.zeros(n_items, np.float32),
            "content_to_cf": np.zeros((1, 1), np.float32),
            "user_emb": np.zeros((0, 1), np.float32),
        }
    )
    rows = np.flatnonzero(np.diff(target.indptr) > 0)
    batch = max(1, min(1000, 50_000_000 // max(n_items, 1)))
    scores = []
    for start in range(0, len(rows), batch):
        part = foldin[rows[start : start + batch]]
        scores.append(ndcg_at_k(rank(component.score(part), part), target[rows[start : start + batch]], 100))
    return float(np.concatenate(scores).mean()) if scores else 0.0


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
