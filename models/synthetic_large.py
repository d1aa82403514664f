"""A large synthetic shop, generated in minutes: up to 1M items and 1M shoppers with tens of
millions of events, seeded, for the large-catalog benchmarks and training.

Structure a recommender can learn, as in real shops:
- items belong to themes (a category, a few brands, a price level, title words); within and
  across themes popularity follows a power law (Zipf exponent ``popularity_exponent``);
- a shopper has one to three favourite themes; each event is in a favourite theme with
  probability ``loyalty``, else an item drawn from the whole catalog by popularity;
- history lengths are heavy-tailed (log-normal, at least one event).
Events are views, with some clicks, carts and purchases (``purchase_share`` of the events
are purchases). Everything is vectorised numpy: no Python loop per user or event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.data import Dataset

WORDS = [
    "vintage", "retro", "rose", "nordic", "spotty", "striped", "gold", "rustic", "pastel", "botanical",
    "scandi", "heart", "star", "woodland", "classic", "party", "linen", "velvet", "marble", "copper",
]  # fmt: skip
KINDS = [
    "mug", "candle", "tote", "notebook", "apron", "planter", "puzzle", "lamp", "cushion", "frame",
    "soap", "necklace", "kettle", "blanket", "vase", "clock", "scarf", "basket", "bowl", "tray",
]  # fmt: skip


@dataclass
class LargeShopConfig:
    n_items: int = 1_000_000
    n_users: int = 1_000_000
    mean_events: float = 12.0  # per shopper (log-normal, heavy-tailed)
    history_sigma: float = 1.0
    n_themes: int = 5_000
    n_categories: int = 300
    n_brands: int = 3_000
    popularity_exponent: float = 1.0
    loyalty: float = 0.8
    purchase_share: float = 0.25
    seed: int = 20261128


def generate(config: LargeShopConfig) -> Dataset:
    """Interactions (user_id, item_id, event, value, timestamp) and the catalog."""
    c = config
    rng = np.random.default_rng(c.seed)
    items, theme = _catalog(c, rng)
    popularity = _popularity(c, rng)
    order = np.argsort(theme, kind="stable")  # items grouped by theme
    theme_start = np.searchsorted(theme[order], np.arange(c.n_themes + 1))
    cum_in_theme = np.cumsum(popularity[order])
    cum_all = np.cumsum(popularity)

    lengths = np.maximum(
        1, rng.lognormal(np.log(c.mean_events) - c.history_sigma**2 / 2, c.history_sigma, c.n_users)
    )
    lengths = lengths.round().astype(np.int64)
    users = np.repeat(np.arange(c.n_users), lengths)
    nonempty = np.flatnonzero(np.diff(theme_start) > 0)
    favourites = nonempty[rng.integers(0, len(nonempty), size=(c.n_users, 3))]
    n_favourite = rng.integers(1, 4, size=c.n_users)
    pick = (rng.random(len(users)) * n_favourite[users]).astype(np.int64)
    event_theme = favourites[users, pick]
    loyal = rng.random(len(users)) < c.loyalty
    item = np.empty(len(users), dtype=np.int64)
    # Within the theme: by popularity inside the theme's slice of the cumulative sums.
    lo = np.where(
        theme_start[event_theme] > 0, cum_in_theme[np.maximum(theme_start[event_theme] - 1, 0)], 0.0
    )
    hi = cum_in_theme[np.maximum(theme_start[event_theme + 1] - 1, 0)]
    target = lo + rng.random(len(users)) * (hi - lo)
    item[loyal] = order[np.minimum(np.searchsorted(cum_in_theme, target[loyal]), len(order) - 1)]
    # Anywhere: by popularity over the whole catalog.
    anywhere = np.searchsorted(cum_all, rng.random(int((~loyal).sum())) * cum_all[-1])
    item[~loyal] = np.minimum(anywhere, c.n_items - 1)
    events = np.where(rng.random(len(users)) < c.purchase_share, "purchase", "view")
    timestamps = 1.7e9 + np.sort(rng.random(len(users))) * 3e7
    interactions = pd.DataFrame(
        {
            "user_id": _ids("U", users, c.n_users),
            "item_id": _ids("P", item, c.n_items),
            "event": events,
            "value": np.nan,
            "timestamp": timestamps,
        }
    )
    return Dataset(interactions=interactions, items=items)


def _catalog(c: LargeShopConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    theme = rng.integers(0, c.n_themes, size=c.n_items)
    theme_category = rng.integers(0, c.n_categories, size=c.n_themes)
    theme_brands = rng.integers(0, c.n_brands, size=(c.n_themes, 4))
    theme_price = np.exp(rng.normal(3.0, 0.8, size=c.n_themes))
    theme_words = rng.integers(0, len(WORDS), size=(c.n_themes, 2))
    theme_kind = rng.integers(0, len(KINDS), size=c.n_themes)
    brand = theme_brands[theme, rng.integers(0, 4, size=c.n_items)]
    word = theme_words[theme, rng.integers(0, 2, size=c.n_items)]
    words, kinds = np.array(WORDS, dtype=object), np.array(KINDS, dtype=object)
    brand_names = np.char.add("Brand", np.arange(c.n_brands).astype(str)).astype(object)
    titles = brand_names[brand] + " " + words[word] + " " + kinds[theme_kind[theme]]
    items = pd.DataFrame(
        {
            "item_id": _ids("P", np.arange(c.n_items), c.n_items),
            "title": titles,
            "category": np.char.add("cat", theme_category[theme].astype(str)),
            "brand": brand_names[brand],
            "price": np.round(theme_price[theme] * np.exp(rng.normal(0, 0.25, size=c.n_items)), 2),
        }
    )
    items["attributes"] = [[] for _ in range(c.n_items)]
    return items, theme


def _popularity(c: LargeShopConfig, rng: np.random.Generator) -> np.ndarray:
    """Zipf weights over a random order of the items: rank r gets (r + 1)^-exponent."""
    ranks = rng.permutation(c.n_items)
    return (ranks + 1.0) ** -c.popularity_exponent


def _ids(prefix: str, numbers: np.ndarray, n: int) -> np.ndarray:
    width = len(str(max(n - 1, 1)))
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), width))


def write(dataset: Dataset, folder: Path, config: LargeShopConfig) -> tuple[Path, Path]:
    """``interactions.parquet`` and ``items.parquet`` (the generic format) and the config."""
    folder.mkdir(parents=True, exist_ok=True)
    interactions, items = folder / "interactions.parquet", folder / "items.parquet"
    dataset.interactions.drop(columns=["value"]).to_parquet(interactions, index=False)
    dataset.items.drop(columns=["attributes"]).to_parquet(items, index=False)
    (folder / "shop.json").write_text(pd.Series(asdict(config)).to_json())
    return interactions, items
