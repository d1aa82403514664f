"""The artifact contract: the only thing serving reads, and the only door between training
and serving.

A version folder holds ``manifest.json`` (:class:`app.scoring.manifest.Manifest`),
``catalog.json`` (category and brand vocabularies), the ``.npy`` arrays of
:data:`SHARED_ARRAYS`, of the catalog (:mod:`app.scoring.catalog`: ids, records, attribute
indexes, known user ids) and of each component the manifest names
(:data:`app.scoring.components.REGISTRY`), and, in large artifacts, the components'
approximate indexes (``*.faiss``, :mod:`app.scoring.ann`). ``DIR/current`` is a symlink to the
serving version, switched atomically. Loading validates the manifest, then presence, dtype,
shape and sha256 of every file and raises :class:`ArtifactError` naming the file and the
problem.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from app.scoring import ann, publications
from app.scoring import catalog as catalog_arrays
from app.scoring.components import REGISTRY, ArraySpec
from app.scoring.manifest import SCHEMA_VERSION, Manifest

CURRENT = "current"
MANIFEST = "manifest.json"
CATALOG_JSON = "catalog.json"  # the category and brand vocabularies

# Arrays every artifact has, beside its components' (app.scoring.components) and its
# catalog's (app.scoring.catalog): name -> (dtype, shape as names of manifest["dims"]); dtype
# "S" is UTF-8 bytes of any width.
SHARED_ARRAYS: dict[str, ArraySpec] = {
    "popularity": ("float32", ("n_items",)),
    "popular_order": ("int64", ("n_items",)),  # items by popularity, most popular first
    # Known users' training histories (CSR over users).
    "user_indptr": ("int64", ("n_users_1",)),
    "user_items": ("int32", ("user_nnz",)),
    "user_weights": ("float32", ("user_nnz",)),
}


def array_specs(components: list[str]) -> dict[str, ArraySpec]:
    """Every array of an artifact with these components, shared ones first."""
    specs = {**SHARED_ARRAYS, **catalog_arrays.ARRAYS}
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
    arrays: dict[str, np.ndarray]
    vocab: dict[str, list[str]]  # catalog.json

    @property
    def version(self) -> str:
        return self.manifest.model_version

    @property
    def items(self) -> list[dict[str, Any]]:
        """Every catalog record, decoded (offline code and tests; serving reads records one
        at a time through app.scoring.catalog.Catalog)."""
        offsets, blob = self.arrays["item_record_offsets"], bytes(self.arrays["item_records"])
        available = self.arrays["item_available"]
        return [
            {**json.loads(blob[offsets[i] : offsets[i + 1]]), "available": bool(available[i])}
            for i in range(len(offsets) - 1)
        ]

    @property
    def users(self) -> list[str]:
        """Every known user id, decoded, in user-index order."""
        return [bytes(u).decode() for u in self.arrays["user_ids"]]


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


def _dtype_ok(array: np.ndarray, dtype: str) -> bool:
    return array.dtype.kind == "S" if dtype == "S" else array.dtype == np.dtype(dtype)


def write(
    out_dir: Path,
    *,
    version: str,
    manifest: dict[str, Any],
    items: list[dict[str, Any]],
    users: list[str],
    arrays: dict[str, np.ndarray],
    log: Callable[[str], None] = print,
) -> Path:
    """Write a complete version folder under ``out_dir`` (not yet published).

    ``manifest`` holds every :class:`Manifest` field but the ones set here (schema and model
    version, dims, sizes, checksums); it is validated before anything is written. ``items``
    (catalog rows aligned with item indices) and ``users`` (ids aligned with user indices)
    become the catalog arrays; ``manifest["retrieval"]["ann"]``: approximate indexes are built
    into the folder (``log`` their progress)."""
    specs = array_specs(manifest["components"])
    catalog, vocab = catalog_arrays.encode(items, users)
    arrays = {**arrays, **catalog}
    missing = set(specs) - set(arrays)
    if missing:
        raise ArtifactError(f"cannot export: arrays missing: {sorted(missing)}")
    full = {
        **manifest,
        "schema_version": SCHEMA_VERSION,
        "model_version": version,
        "dims": dims_of(arrays, specs),
        "sizes": {},
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
        array = arrays[name] if dtype == "S" else np.ascontiguousarray(arrays[name], dtype=dtype)
        np.save(path, array)
    (folder / CATALOG_JSON).write_text(json.dumps(vocab, ensure_ascii=False))
    settings, lowrank = full["retrieval"].get("ann"), full["retrieval"].get("lowrank")
    if settings or lowrank:
        components = {n: REGISTRY[n](arrays) for n in REGISTRY if n in manifest["components"]}
        head = None
        if settings:
            settings = {**settings, "head_indexes": ann.head_indexes(components)}
            full["retrieval"] = {**full["retrieval"], "ann": settings}
            ivf = ann.IVFSettings(**settings)
            ann.build_indexes(folder, components, arrays["popular_order"], ivf, log=log)
            head = ann.head_items(arrays["popular_order"], ivf.head)
        if lowrank:  # of the exact scans: the heads' with IVF indexes, else the whole catalog's
            ranks = ann.build_lowrank(folder, components, ann.LowRankSettings(**lowrank), log=log, head=head)
            full["retrieval"] = {**full["retrieval"], "lowrank": {**lowrank, "ranks": ranks}}
    for path in sorted(folder.iterdir()):
        full["sizes"][path.name] = path.stat().st_size
        full["checksums"][path.name] = sha256(path)
    (folder / MANIFEST).write_text(json.dumps(full, indent=2, default=str))
    return folder


def verify(folder: Path) -> None:
    """Every file's sha256 against the manifest (ArtifactError on the first mismatch): run
    when a version is published, so serving processes need not read every byte to start."""
    manifest = read_manifest(folder)
    for name, digest in manifest.checksums.items():
        file = folder / name
        if not file.exists():
            raise ArtifactError(f"{file}: missing")
        if sha256(file) != digest:
            raise ArtifactError(f"{file}: checksum mismatch (file changed or truncated)")


def publish(out_dir: Path, version: str, *, rollback: bool = False) -> None:
    """Verify ``version`` (every checksum), point ``out_dir/current`` at it atomically
    (rename over the old link), then append it to the publish history
    (app.scoring.publications)."""
    verify(out_dir / version)
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


def index_files(manifest: Manifest) -> list[str]:
    """The index files of a version: faiss IVF (from ``retrieval.ann_from_items`` items) and
    low-rank projections (of the whole catalog below it, of the IVF's exact head from it; the
    manifest's file list says which indexes have them)."""
    files = []
    if manifest.retrieval.ann is not None:
        files += ann.index_files({n: REGISTRY[n] for n in manifest.components})
    if manifest.retrieval.lowrank is not None:
        part = "" if manifest.retrieval.ann is None else "head"
        for name in manifest.components:
            for index in REGISTRY[name].index_names:
                files += [f for f in ann.lowrank_files(name, index, part) if f in manifest.sizes]
    return files


def load(path: Path, *, checksums: bool = False) -> Artifact:
    """Load and validate a version folder (or ``DIR/current``); arrays are memory-mapped.

    Every file's size, and every array's dtype and shape, are checked (a truncated or
    replaced file is refused); ``checksums`` also reads every byte against its sha256, which
    publishing (:func:`verify`) has done already."""
    folder = resolve(path)
    manifest = read_manifest(folder)
    specs = array_specs(manifest.components)
    dims = manifest.dims
    indexes = index_files(manifest)
    for name in (CATALOG_JSON, *(f"{n}.npy" for n in specs), *indexes):
        file = folder / name
        if not file.exists():
            raise ArtifactError(f"{file}: missing")
        if file.stat().st_size != manifest.sizes.get(name):
            size, expected = file.stat().st_size, manifest.sizes.get(name)
            raise ArtifactError(f"{file}: {size} bytes, the manifest says {expected} (truncated or replaced)")
    if checksums:
        verify(folder)
    arrays = {}
    for name, (dtype, shape_names) in specs.items():
        file = folder / f"{name}.npy"
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ArtifactError(f"{file}: not a readable .npy array: {exc}") from exc
        shape = tuple(dims.get(d, -1) for d in shape_names)
        if not _dtype_ok(array, dtype):
            raise ArtifactError(f"{file}: dtype {array.dtype}, expected {dtype}")
        if array.shape != shape:
            raise ArtifactError(f"{file}: shape {array.shape}, expected {shape}")
        arrays[name] = array
    try:
        vocab = json.loads((folder / CATALOG_JSON).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{folder / CATALOG_JSON}: unreadable: {exc}") from exc
    return Artifact(path=folder, manifest=manifest, arrays=arrays, vocab=vocab)


PAGE = 4096


def prefault(loaded: Artifact) -> None:
    """Read one byte of every page of the memory-mapped arrays, so that the process's page
    tables are filled (and files not in the page cache are read) before the version serves:
    its first requests then pay no page faults. The server does this when it loads a version
    (1M-item bench artifact: 2.6 GB in 3.3 s from a cold cache, 0.4 s from a warm one;
    t_score median 6.1 -> 4.2 ms, p90 15 -> 8 ms). The approximate indexes are mapped by
    faiss, out of reach here: their files are read once so that they are in the page cache
    (1M items, collaborative similar items from cold files: p99 80 ms; cached: 1.3 ms)."""
    for array in loaded.arrays.values():
        if isinstance(array, np.memmap) and array.nbytes:
            flat = np.asarray(array).reshape(-1).view(np.uint8)
            flat[::PAGE].max()
    for name in index_files(loaded.manifest):
        with (loaded.path / name).open("rb", buffering=0) as handle:
            while handle.read(1 << 22):
                pass
