"""Artifact round trip and each validation error."""

from __future__ import annotations

import json
import shutil

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
    assert loaded.manifest["schema_version"] == artifact.SCHEMA_VERSION
    assert loaded.users == result.split.user_ids
    assert [i["item_id"] for i in loaded.items] == result.split.item_ids
    for name, array in result.arrays.items():
        np.testing.assert_array_equal(np.asarray(loaded.arrays[name]), array, err_msg=name)
        assert isinstance(loaded.arrays[name], np.memmap), name
    for key in (
        "created_at",
        "data_fingerprint",
        "counts",
        "hyperparameters",
        "metrics",
        "consumed",
        "code_revision",
        "checksums",
        "dims",
        "blend_weights",
    ):
        assert key in loaded.manifest


def test_current_is_a_symlink_switched_atomically(artifacts_dir, tmp_path):
    current = artifacts_dir / artifact.CURRENT
    assert current.is_symlink()
    (tmp_path / "v2").mkdir()
    artifact.publish(tmp_path, "v2")
    assert (tmp_path / "current").resolve() == (tmp_path / "v2").resolve()


def test_missing_file(copy):
    (copy / "item_emb.npy").unlink()
    with pytest.raises(ArtifactError, match=r"item_emb.npy: missing"):
        artifact.load(copy)


def test_checksum_mismatch_on_truncation(copy):
    path = copy / "user_emb.npy"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match=r"user_emb.npy: checksum mismatch"):
        artifact.load(copy)


def test_wrong_schema_version(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="schema_version 99"):
        artifact.load(copy)


def test_bad_shape_and_dtype(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    np.save(copy / "item_bias.npy", np.zeros(3, dtype=np.float32))
    manifest["checksums"]["item_bias.npy"] = artifact.sha256(copy / "item_bias.npy")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"item_bias.npy: shape \(3,\)"):
        artifact.load(copy)
    np.save(copy / "item_bias.npy", np.zeros(manifest["dims"]["n_items"], dtype=np.float64))
    manifest["checksums"]["item_bias.npy"] = artifact.sha256(copy / "item_bias.npy")
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
