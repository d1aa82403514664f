"""`make bench-scale` in small: a generated shop trained end to end by scripts/bench_scale.py,
its stages timed and the artifact served, the table written into the report section."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_scale_trains_a_generated_shop_and_reports_each_stage(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"vae": {"epochs": 2, "hidden": 32, "latent": 8}, "item_ae": {"epochs": 2}}))
    out = tmp_path / "scaling.md"
    out.write_text("# Scaling\n\nkept\n")
    command = [sys.executable, "scripts/bench_scale.py", "--items", "3000", "--users", "2000",
               "--mean-events", "6", "--config", str(config), "--work", str(tmp_path / "work"),
               "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("# Scaling\n\nkept\n") and "<!-- scale -->" in text
    for stage in ("clean and prepare", "select vae", "refit vae", "select ease"):
        assert f"| {stage} |" in text, stage
    assert "| reading the files, export (arrays, indexes, checksums), the rest |" in text
    assert "3,000 items" in text and "a first recommendation in" in text and "(10 items)" in text
    assert "this benchmark's process tree, summed and sampled every second:" in text


# Few epochs, one lambda, a short blend search, 1,000 validation users: what CI can afford.
SMALL_100K = {
    "vae": {"epochs": 2, "hidden": 200, "latent": 64},
    "item_ae": {"epochs": 1},
    "ease": {"lambdas": [100.0]},
    "blend": {"grid": [0.0, 0.5, 1.0, 2.0], "rounds": 1},
    "split": {"max_heldout_users": 1000},
}


@pytest.mark.slow
def test_a_100k_item_shop_trains_end_to_end_and_beats_popularity(tmp_path):
    """The same benchmark at 100,000 items (the large-catalog paths: sampled-softmax VAE,
    local sparse item-item, sparse features, two-stage serving), few epochs: it completes, and the
    served blend ranks held-out shoppers' items better than popularity. Not a timing test."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps(SMALL_100K))
    measured = tmp_path / "measured.json"
    command = [sys.executable, "scripts/bench_scale.py", "--items", "100000", "--users", "20000",
               "--mean-events", "6", "--config", str(config), "--work", str(tmp_path / "work"),
               "--out", str(tmp_path / "scaling.md"), "--json", str(measured),
               "--test-users", "300"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(measured.read_text())
    assert result["tree_peak_rss_mb"] > 0 and result["peak_rss_mb"] > 0
    assert {"select vae", "select ease", "refit vae", "refit ease"} <= set(result["stages"])
    quality = result["quality"]
    assert quality["blend"]["ndcg@100"] > quality["popular"]["ndcg@100"], quality
