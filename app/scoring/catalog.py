"""Catalog changes between trainings: an artifact plus item updates -> a new artifact.

A changed item keeps its learned collaborative embedding and gets a new content embedding
from the exported item-autoencoder encoder; a new item also gets a collaborative embedding
through the content -> CF map (the cold-start path), zero encoder and EASE rows, and zero
popularity, so it is recommendable and findable by ``similar`` at once. Pure numpy; the
result is swapped in whole, like a reload.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from app.scoring.artifact import Artifact
from app.scoring.features import FeatureSpace, content_to_cf, encode_content

ITEM_FIELDS = ("title", "category", "brand", "price", "attributes", "available")


def apply_updates(base: Artifact, updates: Mapping[str, dict[str, Any] | None]) -> Artifact:
    """updates: item_id -> new catalog entry, or None for a deleted item."""
    if not updates:
        return base
    items = [dict(item) for item in base.items]
    index = {item["item_id"]: i for i, item in enumerate(items)}
    new_ids = [i for i, entry in updates.items() if i not in index and entry is not None]
    for item_id in new_ids:
        index[item_id] = len(items)
        items.append({"item_id": item_id})
    for item_id, entry in updates.items():
        if item_id not in index:
            continue
        row = items[index[item_id]]
        if entry is None:
            row["available"], row["deleted"] = False, True
        else:
            row.update({k: entry[k] for k in ITEM_FIELDS if k in entry})
            row.pop("deleted", None)
    arrays = dict(base.arrays)
    changed = np.array([index[i] for i, e in updates.items() if e is not None and i in index], dtype=np.int64)
    space = FeatureSpace.from_dict(base.manifest["feature_space"])
    n_old, n_new = len(base.items), len(new_ids)
    if n_new:
        arrays = _grow(arrays, n_new)
    if len(changed):
        content = encode_content(space.encode([items[i] for i in changed]), arrays)
        arrays["content_emb"] = np.array(arrays["content_emb"], copy=True)
        arrays["content_emb"][changed] = content
        fresh = changed[changed >= n_old]
        if len(fresh):
            emb, bias = content_to_cf(arrays["content_emb"][fresh], arrays)
            arrays["item_emb"][fresh], arrays["item_bias"][fresh] = emb, bias
    return dataclasses.replace(base, items=items, arrays=arrays)


def _grow(arrays: dict[str, np.ndarray], n_new: int) -> dict[str, np.ndarray]:
    """Append ``n_new`` zero item rows to every per-item array (copies, float32)."""
    out = dict(arrays)
    for name in ("enc_w1", "item_emb", "content_emb"):
        old = np.asarray(arrays[name])
        out[name] = np.vstack([old, np.zeros((n_new, old.shape[1]), dtype=np.float32)])
    for name in ("item_bias", "popularity"):
        out[name] = np.concatenate([np.asarray(arrays[name]), np.zeros(n_new, dtype=np.float32)])
    indptr = np.asarray(arrays["ease_indptr"])
    out["ease_indptr"] = np.concatenate([indptr, np.full(n_new, indptr[-1], dtype=np.int64)])
    return out
