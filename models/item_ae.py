"""Item autoencoder on attribute features, and the content -> collaborative embedding map.

A denoising autoencoder [F -> hidden -> d -> hidden -> F] (ReLU, sigmoid output, binary
cross-entropy: the features are multi-hot or in [0, 1]) gives each item a content embedding
from its category, brand, attributes, title words and price. A ridge regression from that
embedding to the VAE's item embedding and bias, fitted on items with interactions, gives a
collaborative embedding to an item nobody has interacted with yet (cold start).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np
from keras import layers

from models.config import ItemAEConfig


def train_item_autoencoder(
    features: np.ndarray, config: ItemAEConfig, *, log: Callable[[str], None] = print
) -> tuple[dict[str, np.ndarray], list[float]]:
    """features: (n_items, feature_dim) float32 in [0, 1].

    Returns the encoder arrays (feat_w1, feat_b1, feat_w2, feat_b2) and the loss per epoch.
    """
    keras.utils.set_random_seed(config.seed)
    dim = features.shape[1]
    batches = max(1, math.ceil(features.shape[0] / config.batch_size))
    epochs = config.epochs or int(
        np.clip(math.ceil(config.step_budget / batches), config.min_epochs, config.max_epochs)
    )
    init = keras.initializers.GlorotUniform(seed=config.seed)
    encoder_hidden = layers.Dense(config.hidden, "relu", kernel_initializer=init)
    encoder_out = layers.Dense(config.embedding, kernel_initializer=init)
    inputs = keras.Input((dim,))
    noisy = layers.Dropout(config.noise, seed=config.seed)(inputs)
    code = encoder_out(encoder_hidden(noisy))
    hidden = layers.Dense(config.hidden, "relu", kernel_initializer=init)(code)
    outputs = layers.Dense(dim, "sigmoid", kernel_initializer=init)(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy")
    losses: list[float] = []

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            losses.append(float((logs or {})["loss"]))
            if (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
                log(f"item autoencoder epoch {epoch + 1}/{epochs} loss {losses[-1]:.4f}")

    model.fit(
        features,
        features,
        batch_size=config.batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[Progress()],
    )
    as32 = lambda v: np.array(keras.ops.convert_to_numpy(v), dtype=np.float32)  # noqa: E731
    arrays = {
        "feat_w1": as32(encoder_hidden.kernel),
        "feat_b1": as32(encoder_hidden.bias),
        "feat_w2": as32(encoder_out.kernel),
        "feat_b2": as32(encoder_out.bias),
    }
    return arrays, losses


def fit_content_to_cf(
    content: np.ndarray, item_emb: np.ndarray, item_bias: np.ndarray, *, l2: float
) -> np.ndarray:
    """Ridge regression [content, 1] -> [item_emb, item_bias] on warm items.

    content: (n_warm, d), item_emb: (n_warm, h), item_bias: (n_warm,).
    Returns (d + 1, h + 1) float32.
    """
    x = np.hstack([content, np.ones((content.shape[0], 1))]).astype(np.float64)
    y = np.hstack([item_emb, item_bias[:, None]]).astype(np.float64)
    penalty = l2 * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0  # the intercept is not shrunk
    return np.linalg.solve(x.T @ x + penalty, x.T @ y).astype(np.float32)
