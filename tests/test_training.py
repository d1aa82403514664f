"""End-to-end training on the synthetic shop, Keras/numpy parity, and the train CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from app.scoring.scorer import top_k
from models.vae import vae_logits

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_model_beats_popularity_by_a_wide_margin(trained):
    result, _ = trained
    metrics = result.metrics  # validation users, selection models
    assert metrics["blend"]["ndcg@100"] > 1.5 * metrics["popular"]["ndcg@100"]
    assert metrics["vae"]["ndcg@100"] > 1.3 * metrics["popular"]["ndcg@100"]
    assert metrics["blend"]["recall@20"] > 1.5 * metrics["popular"]["recall@20"]


@pytest.mark.slow
def test_keras_and_numpy_agree(trained):
    result, _ = trained
    histories = result.data.val_foldin[:50]
    keras_logits = vae_logits(result.shared["vae_model"], histories)  # the selection model
    # Cold items' decoder rows are replaced by the content map at export: compare warm ones.
    warm = np.asarray((result.data.train != 0).sum(axis=0)).ravel() > 0
    numpy_logits = result.selection.component_scores(histories, only=("vae",))["vae"]
    np.testing.assert_allclose(numpy_logits[:, warm], keras_logits[:, warm], rtol=1e-4, atol=1e-4)
    exclude = histories.toarray() > 0
    keras_top = top_k(np.where(warm, keras_logits, -np.inf).astype(np.float32), 10, exclude=exclude)
    numpy_top = top_k(np.where(warm, numpy_logits, -np.inf).astype(np.float32), 10, exclude=exclude)
    assert (keras_top == numpy_top).mean() > 0.99


def test_cold_items_get_embeddings_from_the_content_map(trained):
    result, _ = trained
    assert result.arrays["content_to_cf"].shape == (
        result.data.features.shape[1] + 1,
        result.arrays["item_emb"].shape[1] + 1,
    )


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_rejects_a_file_without_id_columns(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("a,b\n1,2\n")
    done = run_cli("--interactions", str(path), "--out", str(tmp_path / "out"))
    assert done.returncode != 0
    assert "log.csv: missing column 'user_id'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_cli_trains_on_a_plain_csv(shop, tmp_path):
    path = tmp_path / "plain.csv"
    frame = shop.interactions[shop.interactions["event"] == "purchase"]
    frame[["user_id", "item_id", "timestamp"]].to_csv(path, index=False)
    config = tmp_path / "fast.json"
    config.write_text(
        '{"vae": {"epochs": 3, "hidden": 64, "latent": 16}, "item_ae": {"epochs": 2},'
        ' "cleaning": {"min_user_interactions": 2, "min_item_interactions": 2},'
        ' "ease": {"lambdas": [100.0], "attribute_weights": [0.0]}}'
    )
    done = run_cli("--interactions", str(path), "--out", str(tmp_path / "out"), "--config", str(config))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "current" / "manifest.json").exists()
    assert "vae epoch 3/3" in done.stdout


def test_the_served_model_is_refitted_on_every_shopper(shop, trained, artifacts_dir):
    """Validation users choose the settings; then every component is fitted again on all
    users of the file, and that refit is exported."""
    from app.scoring import artifact

    result, _ = trained
    loaded = artifact.load(artifacts_dir)
    assert set(loaded.users) == set(shop.interactions["user_id"])
    assert len(result.data.val_users) > 0
    served_popularity = np.asarray(loaded.arrays["popularity"])
    assert served_popularity.sum() == (result.data.full > 0).sum()  # validation users included
    selection_popularity = result.selection.arrays["popularity"]
    assert selection_popularity.sum() == (result.data.train > 0).sum() < served_popularity.sum()
    refit, selected = result.scorer.components["ease"].matrix, result.selection.components["ease"].matrix
    assert (refit != selected).nnz > 0.5 * refit.nnz  # a new fit, not the selection's copy


def test_epoch_budgets_scale_with_the_data():
    from models.config import VAEConfig
    from models.vae import plan_epochs

    config = VAEConfig()
    small, large = plan_epochs(config, n_users=3_000), plan_epochs(config, n_users=1_000_000)
    assert small == (200, 20)  # 6 batches per epoch: the cap, not cut short
    assert large == (5, 5)  # 2,000 batches per epoch: max_steps (10,000) under the floor of 10
    assert plan_epochs(config, n_users=100_000) == (10, 5)  # 200 batches: the floor
    assert plan_epochs(VAEConfig(epochs=7, patience=3), n_users=3_000) == (7, 3)


def test_the_content_map_weights_items_by_how_much_their_rows_were_trained():
    """A row with weight 0 (an item never trained) does not move the content->CF map; with
    weight 1 it does."""
    from models.item_ae import fit_content_to_cf

    rng = np.random.default_rng(0)
    content = rng.standard_normal((50, 4))
    emb = content @ rng.standard_normal((4, 3))
    bias = content[:, 0]
    noisy_emb, noisy_bias = emb.copy(), bias.copy()
    noisy_emb[0], noisy_bias[0] = 100.0, -100.0  # a barely trained item's wild row
    clean = fit_content_to_cf(content[1:], emb[1:], bias[1:], l2=1.0)
    weights = np.ones(50)
    weights[0] = 0.0
    ignored = fit_content_to_cf(content, noisy_emb, noisy_bias, l2=1.0, weights=weights)
    trusted = fit_content_to_cf(content, noisy_emb, noisy_bias, l2=1.0)
    assert np.allclose(ignored, clean, atol=1e-4)
    assert not np.allclose(trusted, clean, atol=1e-1)


def test_a_new_catalog_item_gets_the_row_the_training_map_gives_its_features(trained):
    """Serving maps a new item's features (encoded from its catalog entry, as training encodes
    the catalog) through the same ridge map: a warm item's attributes re-added under a new id
    get ``[features, 1] @ content_to_cf`` of that item, and a different title moves the row."""
    from app.scoring.artifact import load
    from app.scoring.features import content_to_cf
    from app.scoring.recommender import Recommender

    result, out = trained
    recommender = Recommender(load(out / "current"))
    i = 0
    entry = {k: result.catalog[i][k] for k in ("title", "category", "brand", "price")}
    recommender.apply_changes({"NEW-A": entry, "NEW-B": {**entry, "title": "walnut sideboard"}})
    a, b = recommender.index_of("NEW-A"), recommender.index_of("NEW-B")
    assert a is not None and b is not None
    vae = recommender.scorer.components["vae"]
    expected_emb, expected_bias = content_to_cf(result.data.features[[i]], result.arrays)
    assert np.allclose(vae.item_vectors(np.array([a]))[0], expected_emb[0], atol=1e-5)
    assert np.isclose(float(vae.bias.take(np.array([a]))[0]), float(expected_bias[0]), atol=1e-5)
    assert not np.allclose(vae.item_vectors(np.array([b]))[0], expected_emb[0], atol=1e-3)


def test_the_content_map_fits_sparse_features_and_caps_their_columns():
    """A map linear in the features is recovered from sparse rows; past ``max_columns`` only
    the most frequent columns get weights (the others' rows are 0)."""
    from models.item_ae import fit_content_to_cf

    rng = np.random.default_rng(1)
    features = sp.random(400, 30, density=0.2, random_state=2, format="csr", dtype=np.float64)
    features.data[:] = 1.0
    truth = rng.standard_normal((30, 5))
    target = np.asarray(features @ truth) + 0.5
    fitted = fit_content_to_cf(features, target[:, :4], target[:, 4], l2=1e-6)
    assert np.allclose(fitted[:-1], truth, atol=1e-3) and np.allclose(fitted[-1], 0.5, atol=1e-3)
    frequency = np.asarray((features != 0).sum(axis=0)).ravel()
    capped = fit_content_to_cf(features, target[:, :4], target[:, 4], l2=1.0, max_columns=10)
    kept = np.flatnonzero(np.abs(capped[:-1]).sum(axis=1) > 0)
    assert len(kept) == 10 and set(kept) == set(np.argsort(-frequency, kind="stable")[:10])


def test_tensorflow_gives_freed_memory_back_once_models_is_imported():
    """The pipeline's stages follow each other in one process: what a 1M-item Mult-VAE
    allocated must not stay resident through the stages after it (oneDNN's own pool kept it)."""
    import subprocess
    import sys

    script = """
import gc
import models  # noqa: F401  (sets the allocator before TensorFlow loads)
import numpy as np, tensorflow as tf
def rss():
    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) // 1024
v = tf.Variable(np.zeros((500_000, 200), np.float32))  # 400 MB
idx = tf.constant(np.arange(0, 500_000, 7), tf.int64)
for _ in range(5):
    v.scatter_update(tf.IndexedSlices(tf.gather(v, idx) * 2.0, idx))
held = rss()
del v
gc.collect()
print(held - rss())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 300, done.stdout  # MB given back


@pytest.mark.slow
def test_selection_arrays_wait_on_disk_memory_mapped_and_score_the_same(trained, tmp_path):
    """During the refits the selection models' arrays are spilled (models/pipeline.spill):
    memory-mapped read-only from files already unlinked, they score as the arrays in memory."""
    from app.scoring.scorer import Scorer
    from models.pipeline import spill

    result, _ = trained
    arrays = dict(result.selection.arrays)
    spilled = spill(arrays, tmp_path, min_bytes=1)
    assert list(tmp_path.iterdir()) == []  # nothing left on disk, even while mapped
    for name, array in arrays.items():
        if array.nbytes:
            assert isinstance(spilled[name], np.memmap) and not spilled[name].flags.writeable, name
        np.testing.assert_array_equal(spilled[name], array)
    histories = result.data.val_foldin[:30]
    before = result.selection.component_scores(histories)
    after = Scorer(spilled, result.weights).component_scores(histories)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
    kept = spill(arrays, tmp_path, min_bytes=1 << 40)  # below the threshold: left in memory
    assert all(kept[name] is arrays[name] for name in arrays)
