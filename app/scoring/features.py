"""Item attribute features: the input of the item autoencoder.

Shared by training (all catalog items) and serving (an item added or changed through the API
gets its vector the same way, then the exported encoder). Layout of one float32 vector:
``[category one-hot | brand one-hot | attribute multi-hot | title word hashes | price, price_missing]``.
Missing values are explicit: an unknown category or brand is all zeros, a missing price is
0 with the ``price_missing`` flag set. Price is ``sigmoid`` of the standardised log price,
so every entry is in [0, 1] (the autoencoder's output is a sigmoid).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # scipy is imported where a sparse matrix is built: serving needs none
    import scipy.sparse as sp

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class FeatureSpace:
    categories: list[str]
    brands: list[str]
    attributes: list[str]
    title_buckets: int
    log_price_mean: float
    log_price_std: float

    @property
    def dim(self) -> int:
        return len(self.categories) + len(self.brands) + len(self.attributes) + self.title_buckets + 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpace:
        return cls(**data)

    @classmethod
    def fit(cls, items: Iterable[Mapping[str, Any]], *, title_buckets: int) -> FeatureSpace:
        items = list(items)
        prices = [math.log1p(p) for p in (_price(i) for i in items) if p is not None]
        mean = float(np.mean(prices)) if prices else 0.0
        std = float(np.std(prices)) if len(prices) > 1 else 1.0
        return cls(
            categories=sorted({c for i in items if (c := _text(i.get("category")))}),
            brands=sorted({b for i in items if (b := _text(i.get("brand")))}),
            attributes=sorted({a for i in items for a in i.get("attributes") or []}),
            title_buckets=title_buckets if any(_text(i.get("title")) for i in items) else 0,
            log_price_mean=mean,
            log_price_std=std if std > 0 else 1.0,
        )

    def encode(self, items: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """(len(items), dim) float32 feature matrix (dense: a few items, e.g. catalog changes)."""
        return self.encode_sparse(items).toarray()

    def encode_sparse(self, items: Sequence[Mapping[str, Any]]) -> sp.csr_matrix:
        """(len(items), dim) float32 CSR feature matrix: a catalog of any size (a 1M-item catalog
        with 5k feature columns is ~10 nonzeros per row, 21 GB dense)."""
        index = {
            "category": {v: i for i, v in enumerate(self.categories)},
            "brand": {v: i + len(self.categories) for i, v in enumerate(self.brands)},
        }
        attr_offset = len(self.categories) + len(self.brands)
        attributes = {v: i + attr_offset for i, v in enumerate(self.attributes)}
        title_offset = attr_offset + len(self.attributes)
        indptr, columns, values = [0], list[int](), list[float]()
        for item in items:
            row: dict[int, float] = {}
            for field in ("category", "brand"):
                column = index[field].get(_text(item.get(field)) or "")
                if column is not None:
                    row[column] = 1.0
            for attribute in item.get("attributes") or []:
                column = attributes.get(attribute)
                if column is not None:
                    row[column] = 1.0
            if self.title_buckets:
                for word in _WORD.findall((_text(item.get("title")) or "").lower()):
                    row[title_offset + zlib.crc32(word.encode()) % self.title_buckets] = 1.0
            price = _price(item)
            if price is None:
                row[self.dim - 1] = 1.0
            else:
                z = (math.log1p(price) - self.log_price_mean) / self.log_price_std
                row[self.dim - 2] = 1.0 / (1.0 + math.exp(-z))
            columns += row.keys()
            values += row.values()
            indptr.append(len(columns))
        import scipy.sparse as sp  # training's encoding: a serving process never imports it

        out = sp.csr_matrix(
            (np.asarray(values, np.float32), np.asarray(columns, np.int32), np.asarray(indptr, np.int64)),
            shape=(len(items), self.dim),
        )
        out.sort_indices()  # sparse tensors downstream need sorted indices
        return out


def encode_content(features: np.ndarray | sp.csr_matrix, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Item autoencoder's encoder in numpy: (n, feature_dim) dense or CSR -> (n, content_dim)
    float32."""
    hidden = np.maximum(np.asarray(features @ arrays["feat_w1"]) + arrays["feat_b1"], 0.0)
    return (hidden @ arrays["feat_w2"] + arrays["feat_b2"]).astype(np.float32)


def content_to_cf(
    features: np.ndarray | sp.csr_matrix, arrays: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Map item feature rows (n, feature_dim), dense or CSR, to collaborative (item_emb,
    item_bias) for cold items: ``[features, 1] @ content_to_cf``."""
    weights = np.asarray(arrays["content_to_cf"])
    mapped = (np.asarray(features @ weights[:-1]) + weights[-1]).astype(np.float32)
    return mapped[:, :-1], mapped[:, -1]


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _price(item: Mapping[str, Any]) -> float | None:
    value = item.get("price")
    try:
        price = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    if price is None or not math.isfinite(price) or price < 0:
        return None
    return price
