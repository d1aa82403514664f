"""A serving artifact of any size, made from the large synthetic shop's catalog with arrays
drawn to look trained (for serving benchmarks at up to 1M items, where latency, memory and
start-up matter, not the model's quality): every array of the artifact contract at its real
size and dtype, with the structure retrieval relies on (items of a theme close together in
the VAE and content spaces, popular items with larger decoder biases, item-item neighbours
within the theme).

    python -c "from models.bench_artifact import build; build(Path('DIR'), n_items=1_000_000)"
    (scripts/bench.py builds it when it is missing)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.scoring import artifact
from app.scoring.features import FeatureSpace
from models.config import TrainConfig
from models.synthetic_large import LargeShopConfig, _catalog, _popularity

# Raised when what this builds changes (the index layout, say), so that scripts/bench.py
# rebuilds a benchmark artifact an older version left in build/: 2 = cosine indexes headless.
GENERATION = 2


def build(
    out_dir: Path,
    *,
    n_items: int,
    n_users: int = 100_000,
    hidden: int = 200,
    seed: int = 7,
    ann: bool | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Write and publish the artifact under ``out_dir``; returns its version folder.
    ``ann``: approximate indexes (default: from ``retrieval.ann_from_items`` items)."""
    rng = np.random.default_rng(seed)
    shop = LargeShopConfig(n_items=n_items, n_users=n_users, n_themes=max(10, n_items // 200), seed=seed)
    items_frame, theme = _catalog(shop, rng)
    popularity = _popularity(shop, rng).astype(np.float32) * 1e4
    items = items_frame.to_dict("records")
    space = FeatureSpace.fit(items[: min(len(items), 50_000)], title_buckets=2048)
    config = TrainConfig()
    config.retrieval.mode = "two_stage"
    if ann is not None:
        config.retrieval.ann_from_items = 0 if ann else n_items + 1
    arrays: dict[str, np.ndarray] = {
        "popularity": popularity,
        "popular_order": np.argsort(-popularity, kind="stable").astype(np.int64),
    }
    arrays |= _vae(rng, theme, popularity, n_users=n_users, hidden=hidden, feature_dim=space.dim)
    arrays |= _content(rng, theme, feature_dim=space.dim, content_dim=64)
    arrays |= _item_item(rng, theme, neighbours=50)
    arrays |= _users(rng, n_users, n_items)
    users = [f"U{u:07d}" for u in range(n_users)]
    manifest: dict[str, Any] = {
        "created_at": "2026-11-28T00:00:00+00:00",
        "data_fingerprint": f"synthetic-{n_items}-{seed}",
        "source": {"kind": "bench", "n_items": n_items, "n_users": n_users, "generation": GENERATION},
        "counts": {
            "users": n_users,
            "items": n_items,
            "warm_items": n_items,
            "interactions": len(arrays["user_items"]),
            "train_users": n_users,
            "validation_users": 0,
        },
        "components": ["content", "vae", "ease"],
        "blend_weights": {"content": 0.2, "vae": 0.5, "ease": 1.0},
        "events": {
            "weights": config.cleaning.event_weights,
            "rating_threshold": config.cleaning.rating_threshold,
        },
        "hyperparameters": config.to_dict(),
        "metrics": {"validation": {}},
        "training": {"note": "arrays drawn for serving benchmarks, not trained"},
        "feature_space": space.to_dict(),
        "retrieval": {
            "mode": "two_stage",
            "pools": {},
            "ann": config.retrieval.ann(n_items),
            "lowrank": config.retrieval.lowrank(n_items),
        },
    }
    version = f"bench-{n_items}"
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = artifact.write(
        out_dir, version=version, manifest=manifest, items=items, users=users, arrays=arrays, log=log
    )
    artifact.publish(out_dir, version)
    return folder


def _clustered(rng: np.random.Generator, theme: np.ndarray, dim: int, spread: float) -> np.ndarray:
    centres = rng.normal(size=(int(theme.max()) + 1, dim)).astype(np.float32)
    out = centres[theme]
    out += rng.normal(scale=spread, size=out.shape).astype(np.float32)
    return out


def _vae(
    rng: np.random.Generator,
    theme: np.ndarray,
    popularity: np.ndarray,
    *,
    n_users: int,
    hidden: int,
    feature_dim: int,
) -> dict[str, np.ndarray]:
    n_items, latent = len(theme), 64
    emb = _clustered(rng, theme, hidden, 0.5) * np.float32(0.1)

    def small(*shape: int) -> np.ndarray:
        return (rng.normal(size=shape) * 0.05).astype(np.float32)

    return {
        "enc_w1": small(n_items, hidden),
        "enc_b1": small(hidden),
        "enc_wmu": small(hidden, latent),
        "enc_bmu": small(latent),
        "dec_w1": small(latent, hidden),
        "dec_b1": small(hidden),
        "item_emb": emb,
        "item_bias": np.log1p(popularity).astype(np.float32),
        "item_norm": np.linalg.norm(emb, axis=1).astype(np.float32),
        "content_to_cf": small(feature_dim + 1, hidden + 1),
        "user_emb": np.tanh(small(n_users, hidden) * 20),
    }


def _content(
    rng: np.random.Generator, theme: np.ndarray, *, feature_dim: int, content_dim: int
) -> dict[str, np.ndarray]:
    content = _clustered(rng, theme, content_dim, 0.7)
    content /= np.linalg.norm(content, axis=1, keepdims=True)

    def small(*shape: int) -> np.ndarray:
        return (rng.normal(size=shape) * 0.05).astype(np.float32)

    return {
        "content_emb": content,
        "feat_w1": small(feature_dim, 256),
        "feat_b1": small(256),
        "feat_w2": small(256, content_dim),
        "feat_b2": small(content_dim),
    }


def _item_item(rng: np.random.Generator, theme: np.ndarray, *, neighbours: int) -> dict[str, np.ndarray]:
    """``neighbours`` items of the same theme per item (CSR over source items)."""
    n_items = len(theme)
    order = np.argsort(theme, kind="stable")
    start = np.searchsorted(theme[order], np.arange(int(theme.max()) + 2))
    lo, size = start[theme], np.maximum(start[theme + 1] - start[theme], 1)
    picks = lo[:, None] + (rng.random((n_items, neighbours)) * size[:, None]).astype(np.int64)
    indices = order[picks].astype(np.int32)
    data = (rng.random((n_items, neighbours)) * 0.1).astype(np.float32)
    return {
        "ease_indptr": np.arange(0, n_items * neighbours + 1, neighbours, dtype=np.int64),
        "ease_indices": indices.ravel(),
        "ease_data": data.ravel(),
    }


def _users(rng: np.random.Generator, n_users: int, n_items: int) -> dict[str, np.ndarray]:
    lengths = np.maximum(1, rng.lognormal(2.0, 0.8, n_users).astype(np.int64))
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return {
        "user_indptr": indptr,
        "user_items": rng.integers(0, n_items, indptr[-1]).astype(np.int32),
        "user_weights": np.full(indptr[-1], 4.0, dtype=np.float32),
    }
