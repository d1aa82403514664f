"""The artifact contract: the only thing serving reads, and the only door between training
and serving.

A version folder holds ``manifest.json``, ``items.json`` (catalog rows aligned with item
indices), ``users.json`` (known user ids aligned with user indices) and the ``.npy`` arrays
of :data:`ARRAYS`. ``DIR/current`` is a symlink to the serving version, switched atomically.
Loading validates schema version, presence, dtype, shape and sha256 of every file and raises
:class:`ArtifactError` naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.scoring import publications

SCHEMA_VERSION = 1
CURRENT = "current"
MANIFEST = "manifest.json"
JSON_FILES = ("items.json", "users.json")

# name -> (dtype, shape as names of manifest["dims"]).
ARRAYS: dict[str, tuple[str, tuple[str, ...]]] = {
    # Mult-VAE encoder (fold-in): x -> tanh(x W1 + b1) -> mu = h Wmu + bmu.
    "enc_w1": ("float32", ("n_items", "hidden")),
    "enc_b1": ("float32", ("hidden",)),
    "enc_wmu": ("float32", ("hidden", "latent")),
    "enc_bmu": ("float32", ("latent",)),
    # Decoder: user vector u = tanh(mu Dw + Db); logits = u item_emb^T + item_bias.
    "dec_w1": ("float32", ("latent", "hidden")),
    "dec_b1": ("float32", ("hidden",)),
    "item_emb": ("float32", ("n_items", "hidden")),
    "item_bias": ("float32", ("n_items",)),
    # Item autoencoder: content embedding per item, and its encoder for new catalog items.
    "content_emb": ("float32", ("n_items", "content_dim")),
    "feat_w1": ("float32", ("feature_dim", "content_hidden")),
    "feat_b1": ("float32", ("content_hidden",)),
    "feat_w2": ("float32", ("content_hidden", "content_dim")),
    "feat_b2": ("float32", ("content_dim",)),
    # Ridge map content embedding (+1 bias column) -> [item_emb | item_bias] (cold start).
    "content_to_cf": ("float32", ("content_dim_bias", "hidden_bias")),
    "popularity": ("float32", ("n_items",)),
    # EASE item-item weights, CSR over source item rows.
    "ease_indptr": ("int64", ("n_items_1",)),
    "ease_indices": ("int32", ("ease_nnz",)),
    "ease_data": ("float32", ("ease_nnz",)),
    # Known users' training histories (CSR) and precomputed user vectors.
    "user_indptr": ("int64", ("n_users_1",)),
    "user_items": ("int32", ("user_nnz",)),
    "user_weights": ("float32", ("user_nnz",)),
    "user_emb": ("float32", ("n_users", "hidden")),
    # Held-out test users of the internal split (fold-in and targets), for evaluate.py.
    "test_foldin_indptr": ("int64", ("n_test_1",)),
    "test_foldin_items": ("int32", ("test_foldin_nnz",)),
    "test_foldin_weights": ("float32", ("test_foldin_nnz",)),
    "test_target_indptr": ("int64", ("n_test_1",)),
    "test_target_items": ("int32", ("test_target_nnz",)),
}


class ArtifactError(RuntimeError):
    """An artifact that cannot be served; the message names the file and the problem."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    manifest: dict[str, Any]
    items: list[dict[str, Any]]
    users: list[str]
    arrays: dict[str, np.ndarray]

    @property
    def version(self) -> str:
        return str(self.manifest["model_version"])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dims_of(arrays: dict[str, np.ndarray], **extra: int) -> dict[str, int]:
    """The manifest dims implied by a complete set of arrays."""
    n_items, hidden = arrays["item_emb"].shape
    dims = {
        "n_items": n_items,
        "n_items_1": n_items + 1,
        "hidden": hidden,
        "hidden_bias": hidden + 1,
        "latent": arrays["enc_wmu"].shape[1],
        "content_dim": arrays["content_emb"].shape[1],
        "content_dim_bias": arrays["content_emb"].shape[1] + 1,
        "content_hidden": arrays["feat_w1"].shape[1],
        "feature_dim": arrays["feat_w1"].shape[0],
        "ease_nnz": arrays["ease_data"].shape[0],
        "n_users": arrays["user_emb"].shape[0],
        "n_users_1": arrays["user_emb"].shape[0] + 1,
        "user_nnz": arrays["user_items"].shape[0],
        "n_test_1": arrays["test_foldin_indptr"].shape[0],
        "test_foldin_nnz": arrays["test_foldin_items"].shape[0],
        "test_target_nnz": arrays["test_target_items"].shape[0],
    }
    dims.update(extra)
    return dims


def write(
    out_dir: Path,
    *,
    version: str,
    manifest: dict[str, Any],
    items: list[dict[str, Any]],
    users: list[str],
    arrays: dict[str, np.ndarray],
) -> Path:
    """Write a complete version folder under ``out_dir`` (not yet published)."""
    missing = set(ARRAYS) - set(arrays)
    if missing:
        raise ArtifactError(f"cannot export: arrays missing: {sorted(missing)}")
    folder = out_dir / version
    folder.mkdir(parents=True, exist_ok=False)
    checksums = {}
    for name, (dtype, _) in ARRAYS.items():
        path = folder / f"{name}.npy"
        np.save(path, np.ascontiguousarray(arrays[name], dtype=dtype))
        checksums[path.name] = sha256(path)
    for name, payload in (("items.json", items), ("users.json", users)):
        path = folder / name
        path.write_text(json.dumps(payload, ensure_ascii=False))
        checksums[name] = sha256(path)
    full = {
        **manifest,
        "schema_version": SCHEMA_VERSION,
        "model_version": version,
        "dims": dims_of(arrays),
        "checksums": checksums,
    }
    (folder / MANIFEST).write_text(json.dumps(full, indent=2, default=str))
    return folder


def publish(out_dir: Path, version: str, *, rollback: bool = False) -> None:
    """Point ``out_dir/current`` at ``version`` atomically (rename over the old link), then
    append it to the publish history (app.scoring.publications)."""
    tmp = out_dir / f".{CURRENT}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(version)
    os.replace(tmp, out_dir / CURRENT)
    publications.record(out_dir, version, rollback=rollback)


def resolve(path: Path) -> Path:
    """A version folder, or an artifacts dir whose ``current`` points at one."""
    if (path / MANIFEST).exists():
        return path
    current = path / CURRENT
    if current.exists():
        return current.resolve()
    raise ArtifactError(f"{path}: no {MANIFEST} and no '{CURRENT}' version; train a model first")


def load(path: Path, *, verify_checksums: bool = True) -> Artifact:
    """Load and validate a version folder (or ``DIR/current``); arrays are memory-mapped."""
    folder = resolve(path)
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: unreadable manifest: {exc}") from exc
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(
            f"{manifest_path}: schema_version {manifest.get('schema_version')!r}, "
            f"this server reads {SCHEMA_VERSION}"
        )
    dims, checksums = manifest.get("dims", {}), manifest.get("checksums", {})
    for name in (*JSON_FILES, *(f"{n}.npy" for n in ARRAYS)):
        file = folder / name
        if not file.exists():
            raise ArtifactError(f"{file}: missing")
        if verify_checksums and checksums.get(name) != sha256(file):
            raise ArtifactError(f"{file}: checksum mismatch (file changed or truncated)")
    arrays = {}
    for name, (dtype, shape_names) in ARRAYS.items():
        file = folder / f"{name}.npy"
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ArtifactError(f"{file}: not a readable .npy array: {exc}") from exc
        expected = tuple(dims.get(d, -1) for d in shape_names)
        if array.dtype != np.dtype(dtype):
            raise ArtifactError(f"{file}: dtype {array.dtype}, expected {dtype}")
        if array.shape != expected:
            raise ArtifactError(f"{file}: shape {array.shape}, expected {expected}")
        arrays[name] = array
    items = json.loads((folder / "items.json").read_text())
    users = json.loads((folder / "users.json").read_text())
    if len(items) != dims["n_items"] or len(users) != dims["n_users"]:
        raise ArtifactError(f"{folder}: items.json/users.json length does not match the manifest")
    return Artifact(path=folder, manifest=manifest, items=items, users=users, arrays=arrays)
