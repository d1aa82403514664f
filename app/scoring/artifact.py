"""The artifact contract: the only thing serving reads, and the only door between training
and serving.

A version folder holds ``manifest.json`` (:class:`app.scoring.manifest.Manifest`),
``items.json`` (catalog rows aligned with item indices), ``users.json`` (known user ids aligned
with user indices) and the ``.npy`` arrays of :data:`SHARED_ARRAYS` and of each component the
manifest names (:data:`app.scoring.components.REGISTRY`). ``DIR/current`` is a symlink to the
serving version, switched atomically. Loading validates the manifest, then presence, dtype,
shape and sha256 of every file and raises :class:`ArtifactError` naming the file and the
problem.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from app.scoring import publications
from app.scoring.components import REGISTRY, ArraySpec
from app.scoring.manifest import SCHEMA_VERSION, Manifest

CURRENT = "current"
MANIFEST = "manifest.json"
JSON_FILES = ("items.json", "users.json")

# Arrays every artifact has, beside its components' (app.scoring.components): name -> (dtype,
# shape as names of manifest["dims"]).
SHARED_ARRAYS: dict[str, ArraySpec] = {
    "popularity": ("float32", ("n_items",)),
    # Known users' training histories (CSR over users).
    "user_indptr": ("int64", ("n_users_1",)),
    "user_items": ("int32", ("user_nnz",)),
    "user_weights": ("float32", ("user_nnz",)),
}


def array_specs(components: list[str]) -> dict[str, ArraySpec]:
    """Every array of an artifact with these components, shared ones first."""
    specs = dict(SHARED_ARRAYS)
    for name in components:
        if name not in REGISTRY:
            raise ArtifactError(f"unknown component {name!r}; this server knows {', '.join(REGISTRY)}")
        specs.update(REGISTRY[name].arrays)
    return specs


class ArtifactError(RuntimeError):
    """An artifact that cannot be served; the message names the file and the problem."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    manifest: Manifest
    items: list[dict[str, Any]]
    users: list[str]
    arrays: dict[str, np.ndarray]

    @property
    def version(self) -> str:
        return self.manifest.model_version


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dims_of(arrays: dict[str, np.ndarray], specs: dict[str, ArraySpec]) -> dict[str, int]:
    """The manifest dims implied by a complete set of arrays; a dim named ``X_1`` is ``X + 1``
    (a CSR ``indptr``), ``X_bias`` is ``X + 1`` (a bias column)."""
    dims: dict[str, int] = {}
    for name, (_, shape_names) in specs.items():
        for axis, dim in enumerate(shape_names):
            size = int(arrays[name].shape[axis])
            if dims.setdefault(dim, size) != size:
                raise ArtifactError(f"cannot export: {name} has {dim}={size}, another array {dims[dim]}")
    for dim in list(dims):
        for suffix in ("_1", "_bias"):
            base = dim.removesuffix(suffix)
            if dim.endswith(suffix) and base in dims and dims[dim] != dims[base] + 1:
                raise ArtifactError(f"cannot export: {dim}={dims[dim]} is not {base}+1={dims[base] + 1}")
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
    """Write a complete version folder under ``out_dir`` (not yet published).

    ``manifest`` holds every :class:`Manifest` field but the ones set here (schema and model
    version, dims, checksums); it is validated before anything is written."""
    specs = array_specs(manifest["components"])
    missing = set(specs) - set(arrays)
    if missing:
        raise ArtifactError(f"cannot export: arrays missing: {sorted(missing)}")
    full = {
        **manifest,
        "schema_version": SCHEMA_VERSION,
        "model_version": version,
        "dims": dims_of(arrays, specs),
        "checksums": {},
    }
    try:
        Manifest.model_validate(full)
    except ValidationError as exc:
        raise ArtifactError(f"cannot export: invalid manifest: {exc}") from exc
    folder = out_dir / version
    folder.mkdir(parents=True, exist_ok=False)
    for name, (dtype, _) in specs.items():
        path = folder / f"{name}.npy"
        np.save(path, np.ascontiguousarray(arrays[name], dtype=dtype))
        full["checksums"][path.name] = sha256(path)
    for name, payload in (("items.json", items), ("users.json", users)):
        path = folder / name
        path.write_text(json.dumps(payload, ensure_ascii=False))
        full["checksums"][name] = sha256(path)
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


def read_manifest(folder: Path) -> Manifest:
    """The validated manifest of a version folder; ArtifactError names what is wrong."""
    path = folder / MANIFEST
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest: {exc}") from exc
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise ArtifactError(
            f"{path}: schema_version {version!r}, this server reads {SCHEMA_VERSION}: train a new "
            "version with this release (scripts/train.py, or scripts/retrain.py --synthetic for the demo "
            "shop) or serve it with the release that wrote it"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ArtifactError(f"{path}: invalid manifest: {exc}") from exc


def load(path: Path, *, verify_checksums: bool = True) -> Artifact:
    """Load and validate a version folder (or ``DIR/current``); arrays are memory-mapped."""
    folder = resolve(path)
    manifest = read_manifest(folder)
    specs = array_specs(manifest.components)
    dims, checksums = manifest.dims, manifest.checksums
    for name in (*JSON_FILES, *(f"{n}.npy" for n in specs)):
        file = folder / name
        if not file.exists():
            raise ArtifactError(f"{file}: missing")
        if verify_checksums and checksums.get(name) != sha256(file):
            raise ArtifactError(f"{file}: checksum mismatch (file changed or truncated)")
    arrays = {}
    for name, (dtype, shape_names) in specs.items():
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
    if len(items) != dims["n_items"] or len(users) != dims["n_users_1"] - 1:
        raise ArtifactError(f"{folder}: items.json/users.json length does not match the manifest")
    return Artifact(path=folder, manifest=manifest, items=items, users=users, arrays=arrays)
