"""Mult-VAE for large catalogs: the same model as models/vae.py (same arrays, same serving
code), trained with a sampled softmax and sparse updates of the item tables.

Per batch of users, the multinomial likelihood is computed over the candidate items C: every
item some user of the batch interacted with, plus ``negatives`` items drawn (with replacement)
from the popularity^``proposal_power`` distribution q. Logits of drawn items are corrected by
-log(n q_j) (the log-Q correction of sampled softmax: an item drawn n q_j times on average
stands for that many items), items of the batch by nothing (always there). The item tables
(encoder input rows, decoder embeddings and biases) are gathered for the batch's items only,
and Adam updates only the rows a batch touched ("lazy" Adam, as TF-Addons' LazyAdam), so a
step costs O(batch items x hidden), not O(catalog x hidden).

Targets and inputs are sparse; validation uses full-softmax logits (the numpy serving
component), in batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from models.config import VAEConfig
from models.progress import StepProgress

Log = Callable[[str], None]


@dataclass
class SampledSettings:
    negatives: int = 2000  # items drawn per batch, shared by its users
    proposal_power: float = 0.75  # q_j proportional to (popularity_j + 1)^power


class LazyAdam:
    """Adam whose update of a row-indexed variable touches only the given rows."""

    def __init__(self, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7):
        self.lr, self.b1, self.b2, self.eps = learning_rate, beta1, beta2, eps
        self.step = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        self.slots: dict[str, tuple[tf.Variable, tf.Variable]] = {}

    def slots_of(self, var: tf.Variable) -> tuple[tf.Variable, tf.Variable]:
        key = var.name
        if key not in self.slots:
            self.slots[key] = (
                tf.Variable(tf.zeros_like(var), trainable=False),
                tf.Variable(tf.zeros_like(var), trainable=False),
            )
        return self.slots[key]

    def correction(self) -> tf.Tensor:
        t = self.step
        return self.lr * tf.sqrt(1.0 - tf.pow(self.b2, t)) / (1.0 - tf.pow(self.b1, t))

    def dense(self, var: tf.Variable, grad: tf.Tensor) -> None:
        m, v = self.slots_of(var)
        m.assign(self.b1 * m + (1.0 - self.b1) * grad)
        v.assign(self.b2 * v + (1.0 - self.b2) * tf.square(grad))
        var.assign_sub(self.correction() * m / (tf.sqrt(v) + self.eps))

    def rows(self, var: tf.Variable, rows: tf.Tensor, grad: tf.Tensor) -> None:
        """Update ``rows`` (distinct indices) of ``var`` with their gradient ``grad``."""
        m, v = self.slots_of(var)
        m_rows = self.b1 * tf.gather(m, rows) + (1.0 - self.b1) * grad
        v_rows = self.b2 * tf.gather(v, rows) + (1.0 - self.b2) * tf.square(grad)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        step = self.correction() * m_rows / (tf.sqrt(v_rows) + self.eps)
        var.scatter_sub(tf.IndexedSlices(step, rows))


class SampledVAE(tf.Module):
    def __init__(self, n_items: int, config: VAEConfig) -> None:
        super().__init__()
        rng = np.random.default_rng(config.seed)

        def glorot(rows: int, cols: int, name: str) -> tf.Variable:
            limit = math.sqrt(6.0 / (rows + cols))
            return tf.Variable(rng.uniform(-limit, limit, (rows, cols)).astype(np.float32), name=name)

        h, z = config.hidden, config.latent
        self.enc_w1 = glorot(n_items, h, "enc_w1")
        self.enc_b1 = tf.Variable(tf.zeros(h), name="enc_b1")
        self.enc_wmu = glorot(h, z, "enc_wmu")
        self.enc_bmu = tf.Variable(tf.zeros(z), name="enc_bmu")
        self.enc_wlv = glorot(h, z, "enc_wlv")
        self.enc_blv = tf.Variable(tf.zeros(z), name="enc_blv")
        self.dec_w1 = glorot(z, h, "dec_w1")
        self.dec_b1 = tf.Variable(tf.zeros(h), name="dec_b1")
        self.item_emb = glorot(n_items, h, "item_emb")
        self.item_bias = tf.Variable(tf.zeros(n_items), name="item_bias")
        self.variational = config.variational
        self.optimizer = LazyAdam(config.learning_rate)
        self.dense_vars = [self.enc_b1, self.enc_wmu, self.enc_bmu, self.dec_w1, self.dec_b1]
        if self.variational:
            self.dense_vars += [self.enc_wlv, self.enc_blv]

    @tf.function(
        input_signature=[
            *(tf.TensorSpec([None], tf.int64) for _ in range(2)),
            tf.TensorSpec([None], tf.float32),
            *(tf.TensorSpec([None], tf.int64) for _ in range(2)),
            tf.TensorSpec([None], tf.float32),
            *(tf.TensorSpec([None], tf.int64) for _ in range(2)),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([], tf.int64),
            tf.TensorSpec([], tf.float32),
            tf.TensorSpec([2], tf.int32),
        ]
    )
    def train_step(
        self,
        in_rows: tf.Tensor,  # (nnz,) int64 batch row of each input entry
        in_items: tf.Tensor,  # (nnz,) int64 position in ``input_items``
        in_values: tf.Tensor,  # (nnz,) normalised, dropped-out input values
        input_items: tf.Tensor,  # (U,) distinct item ids of the inputs
        candidates: tf.Tensor,  # (C,) distinct candidate item ids
        log_q: tf.Tensor,  # (C,) log-Q correction of each candidate (0 for the batch's items)
        target_rows: tf.Tensor,  # (T,) batch row of each target entry
        target_cols: tf.Tensor,  # (T,) position in ``candidates``
        target_values: tf.Tensor,  # (T,) target weights
        batch: tf.Tensor,  # () int64 rows in the batch
        beta: tf.Tensor,
        seed: tf.Tensor,  # (2,) int32 stateless random seed of the reparameterisation
    ) -> tuple[tf.Tensor, tf.Tensor]:
        self.optimizer.step.assign_add(1.0)
        with tf.GradientTape() as tape:
            w1_rows = tf.gather(self.enc_w1, input_items)
            emb_rows = tf.gather(self.item_emb, candidates)
            bias_rows = tf.gather(self.item_bias, candidates)
            tape.watch([w1_rows, emb_rows, bias_rows])
            x = tf.SparseTensor(
                tf.stack([in_rows, in_items], axis=1),
                in_values,
                tf.stack([batch, tf.shape(input_items, out_type=tf.int64)[0]]),
            )
            hidden = tf.tanh(tf.sparse.sparse_dense_matmul(x, w1_rows) + self.enc_b1)
            mu = hidden @ self.enc_wmu + self.enc_bmu
            kl = tf.constant(0.0)
            z = mu
            if self.variational:
                logvar = hidden @ self.enc_wlv + self.enc_blv
                kl = tf.reduce_mean(
                    0.5 * tf.reduce_sum(-logvar + tf.exp(logvar) + tf.square(mu) - 1.0, axis=1)
                )
                z = mu + tf.exp(0.5 * logvar) * tf.random.stateless_normal(tf.shape(mu), seed)
            user = tf.tanh(z @ self.dec_w1 + self.dec_b1)
            logits = user @ tf.transpose(emb_rows) + bias_rows - log_q
            log_probs = tf.nn.log_softmax(logits, axis=1)
            picked = tf.gather_nd(log_probs, tf.stack([target_rows, target_cols], axis=1))
            nll = -tf.reduce_sum(picked * target_values) / tf.cast(batch, tf.float32)
            loss = nll + beta * kl
        grads = tape.gradient(loss, [w1_rows, emb_rows, bias_rows, *self.dense_vars])
        self.optimizer.rows(self.enc_w1, input_items, grads[0])
        self.optimizer.rows(self.item_emb, candidates, grads[1])
        self.optimizer.rows(self.item_bias, candidates, grads[2])
        for var, grad in zip(self.dense_vars, grads[3:], strict=True):
            self.optimizer.dense(var, grad)
        return nll, kl

    def export_arrays(self) -> dict[str, np.ndarray]:
        as32 = lambda v: np.array(v.numpy(), dtype=np.float32)  # noqa: E731
        return {
            "enc_w1": as32(self.enc_w1),
            "enc_b1": as32(self.enc_b1),
            "enc_wmu": as32(self.enc_wmu),
            "enc_bmu": as32(self.enc_bmu),
            "dec_w1": as32(self.dec_w1),
            "dec_b1": as32(self.dec_b1),
            "item_emb": as32(self.item_emb),
            "item_bias": as32(self.item_bias),
        }


def _batch_tensors(
    rows: sp.csr_matrix,
    *,
    dropout: float,
    popularity_q: np.ndarray,
    settings: SampledSettings,
    rng: np.random.Generator,
    q_cdf: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The sparse inputs, candidates and targets of one batch of users (CSR rows); ``q_cdf``
    is ``popularity_q``'s cumulative sum (computed here when not given)."""
    if q_cdf is None:
        q_cdf = np.cumsum(popularity_q)
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
    coo = rows.tocoo()
    values = (coo.data / np.maximum(norms[coo.row], 1e-12)).astype(np.float32)
    keep = rng.random(len(values)) >= dropout
    in_rows, in_cols, in_values = coo.row[keep], coo.col[keep], values[keep] / (1.0 - dropout)
    input_items, in_pos = np.unique(in_cols, return_inverse=True)
    positives = np.unique(coo.col)
    # Inverse-CDF draws: rng.choice(p=q) rebuilds q's CDF per call, O(catalog) each batch.
    drawn = np.minimum(np.searchsorted(q_cdf, rng.random(settings.negatives) * q_cdf[-1]), len(q_cdf) - 1)
    sampled = np.setdiff1d(np.unique(drawn), positives)
    candidates = np.concatenate([positives, sampled])
    log_q = np.concatenate(
        [np.zeros(len(positives)), np.log(settings.negatives * popularity_q[sampled])]
    ).astype(np.float32)
    return {
        "in_rows": in_rows.astype(np.int64),
        "in_items": in_pos.astype(np.int64),
        "in_values": in_values.astype(np.float32),
        "input_items": input_items.astype(np.int64),
        "candidates": candidates.astype(np.int64),
        "log_q": log_q,
        "target_rows": coo.row.astype(np.int64),
        "target_cols": np.searchsorted(positives, coo.col).astype(np.int64),
        "target_values": coo.data.astype(np.float32),
        "batch": np.int64(rows.shape[0]),
    }


def train_sampled_vae(
    train: sp.csr_matrix,
    config: VAEConfig,
    *,
    epochs: int,
    patience: int | None = None,
    anneal_epochs: int | None = None,
    validate: Callable[[dict[str, np.ndarray]], float] | None = None,
    settings: SampledSettings | None = None,
    log: Log = print,
) -> tuple[dict[str, np.ndarray], list[dict[str, float]], int]:
    """Fit on (n_users, n_items) float32 CSR rows; as models.vae.train_vae, but returns the
    exported arrays (the best epoch's with ``validate``, which scores exported arrays)."""
    settings = settings or SampledSettings()
    tf.random.set_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train = train.tocsr().astype(np.float32)
    model = SampledVAE(train.shape[1], config)
    counts = np.asarray((train != 0).sum(axis=0)).ravel().astype(np.float64)
    q = (counts + 1.0) ** settings.proposal_power
    q /= q.sum()
    q_cdf = np.cumsum(q)
    n_batches = math.ceil(train.shape[0] / config.batch_size)
    anneal_steps = max(1, int(config.anneal_fraction * (anneal_epochs or epochs) * n_batches))
    history: list[dict[str, float]] = []
    best, best_epoch, best_arrays = -1.0, epochs, None
    started, step = time.perf_counter(), 0
    progress = StepProgress("vae (sampled softmax)", epochs=epochs, steps=n_batches, log=log)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(train.shape[0])
        nll_sum = kl_sum = 0.0
        for b in range(n_batches):
            rows = train[order[b * config.batch_size : (b + 1) * config.batch_size]]
            tensors = _batch_tensors(
                rows, dropout=config.dropout, popularity_q=q, settings=settings, rng=rng, q_cdf=q_cdf
            )
            beta = config.beta_max * min(1.0, step / anneal_steps)
            seed = rng.integers(0, 2**31 - 1, size=2).astype(np.int32)
            nll, kl = model.train_step(
                **{k: tf.constant(v) for k, v in tensors.items()},
                beta=tf.constant(beta, tf.float32),
                seed=tf.constant(seed),
            )
            nll_sum, kl_sum, step = nll_sum + float(nll), kl_sum + float(kl), step + 1
            progress.tick(epoch, b + 1)
        elapsed = time.perf_counter() - started
        row = {
            "epoch": epoch,
            "nll": nll_sum / n_batches,
            "kl": kl_sum / n_batches,
            "beta": beta,
            "seconds": elapsed,
        }
        eta = elapsed / epoch * (epochs - epoch)
        line = (
            f"vae (sampled softmax) epoch {epoch}/{epochs} nll {row['nll']:.3f} beta {beta:.3f} "
            f"{elapsed / epoch:.1f}s/epoch eta {eta:.0f}s"
        )
        if validate is not None:
            arrays = model.export_arrays()
            row["val_ndcg@100"] = ndcg = validate(arrays)
            if ndcg > best:
                best, best_epoch, best_arrays = ndcg, epoch, arrays
            line += f" val ndcg@100 {ndcg:.4f} (best {best:.4f} @ {best_epoch})"
        history.append(row)
        log(line)
        if validate is not None and patience is not None and epoch - best_epoch >= patience:
            log(f"vae early stop: no gain for {patience} epochs")
            break
    return (best_arrays if best_arrays is not None else model.export_arrays()), history, best_epoch
