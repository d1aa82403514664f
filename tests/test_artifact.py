"""Artifact round trip and each validation error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.scoring import artifact
from app.scoring.artifact import ArtifactError


@pytest.fixture
def copy(artifacts_dir, tmp_path):
    src = artifact.resolve(artifacts_dir)
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_round_trip(trained, artifacts_dir):
    result, _ = trained
    loaded = artifact.load(artifacts_dir)
    manifest = loaded.manifest
    assert manifest.schema_version == artifact.SCHEMA_VERSION == 3
    assert loaded.users == result.data.user_ids
    assert [i["item_id"] for i in loaded.items] == result.data.item_ids
    assert set(loaded.arrays) == set(artifact.array_specs(manifest.components))
    assert set(result.arrays) <= set(loaded.arrays)  # plus the catalog's, written from its rows
    for name, array in result.arrays.items():
        np.testing.assert_array_equal(np.asarray(loaded.arrays[name]), array, err_msg=name)
        assert isinstance(loaded.arrays[name], np.memmap), name
    assert manifest.components == ["content", "vae", "ease"]
    assert manifest.blend_weights == result.weights
    assert manifest.events.weights["purchase"] == 4.0
    assert manifest.counts.users == len(result.data.user_ids) and manifest.data_fingerprint


def test_current_is_a_symlink_switched_atomically(artifacts_dir, tmp_path):
    current = artifacts_dir / artifact.CURRENT
    assert current.is_symlink()
    shutil.copytree(artifact.resolve(artifacts_dir), tmp_path / "v2")
    artifact.publish(tmp_path, "v2")
    assert (tmp_path / "current").resolve() == (tmp_path / "v2").resolve()


def test_publishing_verifies_every_checksum_and_loading_every_size(copy):
    """A serving process checks sizes, dtypes and shapes (fast at any size); publishing reads
    every byte, so a file changed in place is refused before it can become current."""
    path = copy / "item_emb.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    artifact.load(copy)  # sizes hold
    with pytest.raises(ArtifactError, match=r"item_emb.npy: checksum mismatch"):
        artifact.load(copy, checksums=True)
    with pytest.raises(ArtifactError, match=r"item_emb.npy: checksum mismatch"):
        artifact.publish(copy.parent, copy.name)
    assert not (copy.parent / artifact.CURRENT).exists()


def test_missing_file(copy):
    (copy / "item_emb.npy").unlink()
    with pytest.raises(ArtifactError, match=r"item_emb.npy: missing"):
        artifact.load(copy)


def test_a_truncated_file_is_refused_at_load(copy):
    path = copy / "user_emb.npy"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match=r"user_emb.npy: \d+ bytes, the manifest says \d+ \(truncated"):
        artifact.load(copy)


def test_an_older_schema_version_is_refused_with_the_fix(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["schema_version"] = 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"schema_version 1, this server reads 3: train a new version"):
        artifact.load(copy)


def test_a_manifest_that_breaks_the_contract_is_refused(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["blend_weights"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"(?s)invalid manifest.*blend_weights"):
        artifact.load(copy)


def test_an_unknown_component_is_refused(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["blend_weights"] = {"vae": 1.0}
    manifest["components"] = ["content", "vae", "ease", "telepathy"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="unknown component 'telepathy'"):
        artifact.load(copy)


def test_bad_shape_and_dtype(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    np.save(copy / "item_bias.npy", np.zeros(3, dtype=np.float32))
    manifest["checksums"]["item_bias.npy"] = artifact.sha256(copy / "item_bias.npy")
    manifest["sizes"]["item_bias.npy"] = (copy / "item_bias.npy").stat().st_size
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"item_bias.npy: shape \(3,\)"):
        artifact.load(copy)
    np.save(copy / "item_bias.npy", np.zeros(manifest["dims"]["n_items"], dtype=np.float64))
    manifest["checksums"]["item_bias.npy"] = artifact.sha256(copy / "item_bias.npy")
    manifest["sizes"]["item_bias.npy"] = (copy / "item_bias.npy").stat().st_size
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"item_bias.npy: dtype float64"):
        artifact.load(copy)


def test_unreadable_manifest(copy):
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=r"manifest.json: unreadable manifest"):
        artifact.load(copy)


def test_no_model_yet(tmp_path):
    with pytest.raises(ArtifactError, match="train a model first"):
        artifact.load(tmp_path)


def _resident_kb(array: np.ndarray) -> int:
    """Rss of the mapping that holds ``array``'s data (/proc/self/smaps): this mapping only,
    not other mappings of the same file elsewhere in the process."""
    address, inside = array.__array_interface__["data"][0], False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start <= address < end
        elif inside and line.startswith("Rss:"):
            return int(line.split()[1])
    raise AssertionError("no mapping holds the array")


def test_prefault_maps_every_page_before_the_version_serves(artifacts_dir):
    loaded = artifact.load(artifacts_dir)
    array = loaded.arrays["item_emb"]
    size_kb = array.nbytes // 1024
    assert _resident_kb(array) < size_kb // 2  # a fresh mapping: pages not yet touched
    artifact.prefault(loaded)
    assert _resident_kb(array) >= size_kb * 0.9


def test_the_demo_trains_again_over_a_model_of_an_older_schema(artifacts_dir, tmp_path):
    """`make demo` keeps a servable model, and trains again over one this release refuses
    (rather than starting a server that cannot load it)."""
    from scripts.demo import _servable

    folder = tmp_path / "artifacts"
    version = artifact.resolve(artifacts_dir)
    shutil.copytree(version, folder / version.name)
    (folder / artifact.CURRENT).symlink_to(version.name)
    assert _servable(folder)
    manifest = json.loads((folder / version.name / "manifest.json").read_text())
    manifest["schema_version"] = 2
    (folder / version.name / "manifest.json").write_text(json.dumps(manifest))
    assert not _servable(folder)
    assert not _servable(tmp_path / "empty")
