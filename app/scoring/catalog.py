"""Catalog changes between trainings: an artifact plus item updates -> a new artifact.

Every per-item array grows by a zero row per new item; then each component fills its rows of
the changed and new items (:meth:`Component.on_catalog_change`): a changed item keeps its
learned collaborative embedding and gets a new content embedding from the exported
item-autoencoder encoder; a new item also gets a collaborative embedding through the
content -> CF map (the cold-start path), and zero encoder and item-item rows and popularity,
so it is recommendable and findable by ``similar`` at once. Pure numpy; the result is
swapped in whole, like a reload.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from app.scoring import artifact
from app.scoring.artifact import Artifact
from app.scoring.components import REGISTRY, ArraySpec
from app.scoring.features import FeatureSpace

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
    changed = np.array([index[i] for i, e in updates.items() if e is not None and i in index], dtype=np.int64)
    n_old = len(base.items)
    arrays = _grow(base.arrays, artifact.array_specs(base.manifest.components), n_new=len(new_ids))
    if len(changed):
        space = FeatureSpace.from_dict(base.manifest.feature_space)
        features = space.encode([items[i] for i in changed])
        for name in base.manifest.components:  # registry order: content before the VAE's map
            REGISTRY[name].on_catalog_change(
                arrays, changed=changed, new=changed[changed >= n_old], features=features
            )
    return dataclasses.replace(base, items=items, arrays=arrays)


def _grow(
    arrays: Mapping[str, np.ndarray], specs: dict[str, ArraySpec], *, n_new: int
) -> dict[str, np.ndarray]:
    """Writable copies of every per-item array with ``n_new`` zero rows appended (a CSR
    ``indptr`` over items repeats its last offset); other arrays are shared."""
    out = dict(arrays)
    for name, (_, dims) in specs.items():
        old = np.asarray(arrays[name])
        if dims and dims[0] == "n_items":
            out[name] = np.concatenate([old, np.zeros((n_new, *old.shape[1:]), dtype=old.dtype)])
        elif dims == ("n_items_1",):
            out[name] = np.concatenate([old, np.full(n_new, old[-1], dtype=old.dtype)])
    return out
