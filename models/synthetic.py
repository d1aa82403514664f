"""A seeded synthetic shop: the embedded default dataset for the demo and the tests.

Items are named products (brand + adjective + kind) in categories with prices; each item has
a latent style made of its category's, its brand's and its own part. Users have latent
tastes; their sessions view items drawn by softmax(taste . style / temperature) mixed with
popularity, then some views become clicks, carts, purchases and ratings. The structure is
learnable (a model that infers tastes beats popularity by a wide margin) but noisy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.data import Dataset

CATEGORIES = {
    "mugs": ["mug", "cup", "tumbler"],
    "candles": ["candle", "tealight", "lantern"],
    "bags": ["tote", "backpack", "shopper"],
    "stationery": ["notebook", "pen set", "planner"],
    "kitchen": ["apron", "cake tin", "tea towel"],
    "garden": ["planter", "watering can", "bird feeder"],
    "toys": ["puzzle", "plush bear", "kite"],
    "lighting": ["lamp", "fairy lights", "night light"],
    "textiles": ["cushion", "throw", "blanket"],
    "decor": ["frame", "vase", "wall clock"],
    "beauty": ["soap", "hand cream", "bath salts"],
    "jewellery": ["necklace", "bracelet", "earrings"],
}
ADJECTIVES = [
    "vintage", "retro", "rose", "nordic", "spotty", "striped", "gold", "rustic",
    "pastel", "botanical", "scandi", "heart", "star", "woodland", "classic", "party",
]  # fmt: skip
BRANDS = [
    "Acorn", "Birch", "Cobalt", "Dapple", "Elm", "Fable", "Gilt", "Harbor", "Indigo",
    "Juniper", "Kestrel", "Linden", "Moss", "Nettle", "Oriel", "Pebble", "Quill", "Rowan",
    "Saffron", "Thistle", "Umber", "Vale", "Willow", "Yarrow",
]  # fmt: skip


@dataclass
class ShopConfig:
    n_users: int = 2000
    n_items: int = 600
    sessions_per_user: float = 4.0
    views_per_session: float = 6.0
    dim: int = 8
    temperature: float = 0.25
    seed: int = 7


def generate(config: ShopConfig | None = None) -> Dataset:
    """Raw interactions (view/click/add_to_cart/purchase/rating) and an item catalog."""
    c = config or ShopConfig()
    rng = np.random.default_rng(c.seed)
    categories = list(CATEGORIES)
    cat_style = rng.normal(size=(len(categories), c.dim))
    brand_style = rng.normal(size=(len(BRANDS), c.dim)) * 0.6
    item_cat = rng.integers(len(categories), size=c.n_items)
    item_brand = rng.integers(len(BRANDS), size=c.n_items)
    style = cat_style[item_cat] + brand_style[item_brand] + rng.normal(size=(c.n_items, c.dim)) * 0.5
    style /= np.linalg.norm(style, axis=1, keepdims=True)
    appeal = rng.normal(scale=0.5, size=c.n_items)  # some items are just more popular
    base_price = np.exp(rng.normal(2.0, 0.5, size=len(categories)))
    prices = np.round(base_price[item_cat] * np.exp(rng.normal(0, 0.3, size=c.n_items)), 2)
    titles = [
        f"{BRANDS[b]} {ADJECTIVES[rng.integers(len(ADJECTIVES))]} "
        f"{CATEGORIES[categories[k]][rng.integers(3)]}"
        for k, b in zip(item_cat, item_brand, strict=True)
    ]
    items = pd.DataFrame(
        {
            "item_id": [f"P{i:05d}" for i in range(c.n_items)],
            "title": titles,
            "category": [categories[k] for k in item_cat],
            "brand": [BRANDS[b] for b in item_brand],
            "price": prices,
            "attributes": [[] for _ in range(c.n_items)],
        }
    )

    taste = rng.normal(size=(c.n_users, c.dim))
    taste /= np.linalg.norm(taste, axis=1, keepdims=True)
    rows: list[tuple[str, str, str, float, float]] = []
    clock = 1_700_000_000.0
    for u in range(c.n_users):
        logits = (style @ taste[u]) / c.temperature + appeal
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        for _ in range(1 + rng.poisson(c.sessions_per_user - 1)):
            clock += rng.exponential(600.0)
            n_views = min(c.n_items, 1 + rng.poisson(c.views_per_session - 1))
            for item in rng.choice(c.n_items, size=n_views, replace=False, p=probs):
                affinity = float(style[item] @ taste[u])
                user, item_id = f"U{u:05d}", f"P{item:05d}"
                clock += rng.exponential(30.0)
                rows.append((user, item_id, "view", np.nan, clock))
                if rng.random() < 0.5 + 0.3 * affinity:
                    rows.append((user, item_id, "click", np.nan, clock + 5))
                    if rng.random() < 0.35 + 0.3 * affinity:
                        rows.append((user, item_id, "add_to_cart", np.nan, clock + 20))
                        if rng.random() < 0.6:
                            rows.append((user, item_id, "purchase", 1.0, clock + 60))
                            if rng.random() < 0.3:
                                stars = float(np.clip(np.round(3.5 + 2 * affinity + rng.normal()), 1, 5))
                                rows.append((user, item_id, "rating", stars, clock + 86_400))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "event", "value", "timestamp"])
    return Dataset(interactions=interactions, items=items)


def write(dataset: Dataset, folder: Path) -> tuple[Path, Path]:
    """Write ``interactions.csv`` and ``items.csv`` (the generic format) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    interactions, items = folder / "interactions.csv", folder / "items.csv"
    dataset.interactions.to_csv(interactions, index=False)
    dataset.items.drop(columns=["attributes"]).to_csv(items, index=False)
    return interactions, items
