"""Close the loop: feedback in Redis -> archive -> retrain -> quality gate -> publish ->
every API process reloads.

Order of effects, so that killing it at any point loses no event and leaves the current
model serving: (1) read the streams after the cursor recorded in the serving manifest;
(2) archive those events (fsynced Parquet); (3) trim each stream up to the last archived
id; (4) train on base data + the whole archive; (5) write the new version; (6) publish it
(switch ``current``) and notify, only if it passes the quality gate or ``force``. The gate
compares the serving and the new model on validation users new to the serving model,
both scored through the serving code (see ``_compare``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from app import registry
from app.scoring import artifact
from app.scoring.scorer import Scorer
from app.store.connect import connect, connect_sync
from app.store.feedback import FeedbackStore
from app.store.keys import Keys
from models import archive, synthetic
from models.config import TrainConfig
from models.data import Dataset, load
from models.errors import NoServingModel
from models.evaluation import evaluate_scorer, rank
from models.metrics import ndcg_at_k
from models.pipeline import Log, TrainResult, run


@dataclass
class RetrainOptions:
    artifacts_dir: Path
    archive_dir: Path
    redis_url: str
    redis_prefix: str = "shoprec:v1"
    redis_cluster: bool = False
    redis_shards: int = 16
    max_drop: float = 0.05  # refuse a version whose validation NDCG@100 is >5% (relative) lower
    force: bool = False
    config: TrainConfig | None = None
    # With no readable serving model: train (and publish) the embedded synthetic demo shop
    # instead of refusing. Never implied: a deployment whose model went missing must not
    # silently start serving the demo shop.
    synthetic: bool = False


@dataclass
class RetrainOutcome:
    version: str
    published: bool
    reason: str
    before: float | None
    after: float
    events: int


def retrain(options: RetrainOptions, *, log: Log = print) -> RetrainOutcome:
    current = _serving_manifest(options.artifacts_dir, synthetic=options.synthetic)
    cursor: dict[str, str] = (current or {}).get("consumed", {}).get("cursor", {})
    events, new_cursor = archive_feedback(options, cursor, log=log)
    feedback = feedback_interactions(options.archive_dir)
    base = _base_dataset(current)
    dataset = Dataset(
        interactions=pd.concat([base.interactions, feedback], ignore_index=True),
        items=_with_catalog_changes(base.items, options),
        dropped=base.dropped,
    )
    log(
        f"step 4/5: training on {len(base.interactions):,} base rows + {len(feedback):,} "
        "archived feedback events"
    )
    config = options.config or (
        TrainConfig.from_dict(current["hyperparameters"]) if current else TrainConfig()
    )
    result = run(
        dataset,
        config,
        out_dir=options.artifacts_dir,
        log=log,
        source=(current or {}).get("source") or {"kind": "synthetic"},
        consumed={"cursor": new_cursor, "archived_events": len(feedback)},
        publish=False,
    )
    assert result.version_dir is not None
    version = result.version_dir.name
    before, after, basis = _compare(options.artifacts_dir, result, current)
    published, reason = _gate(before, after, options)
    if published:
        artifact.publish(options.artifacts_dir, version)
        client = connect_sync(options.redis_url, cluster=options.redis_cluster)
        try:
            client.publish(registry.channel(options.redis_prefix), version)
        finally:
            client.close()
    log(
        f"step 5/5: {version} {'published' if published else 'NOT published'} ({reason}); "
        f"validation ndcg@100 ({basis}): serving {before if before is None else round(before, 4)}, "
        f"new {after:.4f}"
    )
    return RetrainOutcome(version, published, reason, before, after, len(events))


def archive_feedback(
    options: RetrainOptions, cursor: dict[str, str], *, log: Log = print
) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Steps 1-3: read the stream events after ``cursor``, archive them, then trim the streams
    up to the archived ids. Returns (the events read, the cursor after them)."""
    log(f"step 1/5: reading feedback after {len(cursor)} stream cursors")
    events, new_cursor = asyncio.run(_read(options, cursor))
    log(f"step 2/5: archiving {len(events):,} new events to {options.archive_dir}")
    archive.write(events, options.archive_dir)
    log("step 3/5: trimming streams up to the archived ids")
    _trim(options, new_cursor)
    return events, new_cursor


def feedback_interactions(archive_dir: Path) -> pd.DataFrame:
    """Every archived event in the canonical interaction columns (cleaning decides which are
    training signals)."""
    events = archive.read(archive_dir)
    return pd.DataFrame(
        {
            "user_id": events["user_id"].astype("string"),
            "item_id": events["item_id"].astype("string"),
            "event": events["event"].astype("string"),
            "value": pd.to_numeric(events["value"], errors="coerce").astype(float),
            "timestamp": pd.to_numeric(events["timestamp"], errors="coerce").astype(float),
        }
    )


def _compare(
    artifacts_dir: Path, result: TrainResult, current: dict[str, Any] | None
) -> tuple[float | None, float, str]:
    """(serving NDCG@100, new NDCG@100, what was compared).

    Fair ground is the new split's validation users that the serving model has never seen
    (new shoppers): both the serving model and the new selection models (which chose the new
    version's settings without seeing them) score them through the serving code. With fewer than
    ``MIN_GATE_USERS`` of them, each model's own validation NDCG@100 is compared instead
    (different users, so noisier)."""
    data = result.data
    own = result.metrics["blend"]["ndcg@100"]
    if current is None:
        return None, own, "no serving model"
    try:
        serving = artifact.load(artifacts_dir)
    except artifact.ArtifactError:
        return None, own, "serving model unreadable"
    seen = set(serving.users)
    unseen = np.array([data.user_ids[u] not in seen for u in data.val_users], dtype=bool)
    rows = np.flatnonzero(unseen & (np.diff(data.val_target.indptr) > 0))
    if len(rows) < MIN_GATE_USERS:
        before = current.get("metrics", {}).get("validation", {}).get("blend", {}).get("ndcg@100")
        return before, own, f"own validation splits ({len(rows)} new validation users)"
    foldin, target = data.val_foldin[rows], data.val_target[rows]
    # The selection models: the refitted ones have been trained on these validation users.
    after = evaluate_scorer(result.selection, foldin, target)["ndcg@100"]
    before = _ndcg_of(serving, data.item_ids, foldin, target)
    return before, after, f"{len(rows)} validation users new to the serving model"


MIN_GATE_USERS = 30


def _ndcg_of(
    serving: artifact.Artifact, item_ids: list[str], foldin: sp.csr_matrix, target: sp.csr_matrix
) -> float:
    """NDCG@100 of an artifact on histories indexed by ``item_ids`` (matched by id;
    items it does not know are dropped from histories and count as misses)."""
    index = {item["item_id"]: i for i, item in enumerate(serving.items)}
    mapping = np.array([index.get(i, -1) for i in item_ids])
    coo = foldin.tocoo()
    known = mapping[coo.col] >= 0
    n_items = len(serving.items)
    mapped = sp.csr_matrix(
        (coo.data[known], (coo.row[known], mapping[coo.col[known]])), shape=(foldin.shape[0], n_items)
    )
    scorer = Scorer(serving.arrays, serving.manifest.blend_weights, serving.manifest.components)
    ranked = np.vstack(
        [
            rank(scorer.score(mapped[i : i + 1000]), mapped[i : i + 1000])
            for i in range(0, mapped.shape[0], 1000)
        ]
    )
    back = np.full(n_items, -1)
    back[mapping[mapping >= 0]] = np.flatnonzero(mapping >= 0)
    ranked = np.where(ranked >= 0, back[np.maximum(ranked, 0)], -1)
    return float(ndcg_at_k(ranked, target, 100).mean())


def _gate(before: float | None, after: float, options: RetrainOptions) -> tuple[bool, str]:
    if before is None:
        return True, "no serving model to compare with"
    if after >= before * (1 - options.max_drop):
        return True, f"within {options.max_drop:.0%} of the serving model"
    if options.force:
        return True, "below the quality gate, published because of --force"
    return False, (
        f"validation ndcg@100 {after:.4f} is more than {options.max_drop:.0%} below the serving "
        f"{before:.4f}; kept on disk for inspection, use --force to publish anyway"
    )


async def _read(
    options: RetrainOptions, cursor: dict[str, str]
) -> tuple[list[dict[str, str]], dict[str, str]]:
    client = connect(options.redis_url, cluster=options.redis_cluster, timeout_s=None)
    try:
        store = FeedbackStore(
            client,
            Keys(options.redis_prefix, options.redis_shards),
            recent_cap=1,
            recent_ttl_s=60,
            idempotency_ttl_s=60,
        )
        return await store.read_events(cursor)
    finally:
        await client.aclose()


def _trim(options: RetrainOptions, cursor: dict[str, str]) -> None:
    """Drop stream entries up to and including the archived id of each stream."""
    client = connect_sync(options.redis_url, cluster=options.redis_cluster)
    try:
        for stream, last_id in cursor.items():
            ms, seq = (int(x) for x in last_id.split("-"))
            client.xtrim(stream, minid=f"{ms}-{seq + 1}", approximate=False)
    finally:
        client.close()


def _with_catalog_changes(items: pd.DataFrame, options: RetrainOptions) -> pd.DataFrame:
    """The base catalog with the changes made through the API (PUT/DELETE /v1/items)."""
    client = connect_sync(options.redis_url, cluster=options.redis_cluster)
    try:
        changes = client.hgetall(Keys(options.redis_prefix).catalog())
    finally:
        client.close()
    if not changes:
        return items
    entries = {item_id: json.loads(raw) for item_id, raw in changes.items()}
    kept = items[~items["item_id"].isin(list(entries))] if len(items) else items
    rows = [
        {
            "item_id": item_id,
            **{k: entry.get(k) for k in ("title", "category", "brand", "price")},
            "attributes": entry.get("attributes") or [],
        }
        for item_id, entry in entries.items()
        if entry is not None and entry.get("available", True)
    ]
    return pd.concat([kept, pd.DataFrame(rows)], ignore_index=True)


def _serving_manifest(artifacts_dir: Path, *, synthetic: bool) -> dict[str, Any] | None:
    """The manifest of DIR/current; None (the demo shop) only when ``synthetic`` is asked for."""
    try:
        manifest: dict[str, Any] = json.loads(
            (artifact.resolve(artifacts_dir) / artifact.MANIFEST).read_text()
        )
    except (artifact.ArtifactError, OSError, json.JSONDecodeError) as exc:
        if synthetic:
            return None
        raise NoServingModel(
            f"no readable serving model to retrain ({exc}); train one first (scripts/train.py), "
            "or pass --synthetic to train and publish the embedded demo shop"
        ) from exc
    return manifest


def _base_dataset(manifest: dict[str, Any] | None) -> Dataset:
    source = (manifest or {}).get("source") or {"kind": "synthetic"}
    if source.get("kind") == "files":
        items = Path(source["items"]) if source.get("items") else None
        return load(Path(source["interactions"]), items, fmt=source.get("format", "auto"))
    return synthetic.generate(synthetic.ShopConfig(**source.get("shop", {})))
