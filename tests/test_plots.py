"""The charts in docs/: training curves per component from a real training report, and the
benchmark's latency distribution (drawn here from a small generated sample; `make bench`
draws docs/latency.png from its own measurements)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from models import plots

ROOT = Path(__file__).resolve().parents[1]


def test_training_curves_draw_every_component(trained, tmp_path):
    result, _ = trained
    out = tmp_path / "curves.png"
    older = {"components": {"vae": result.report["components"]["vae"]}}  # no other component recorded
    # A sparse item-item search records its solver's name among the numbers.
    sparse = {"lam": 100.0, "sparse": True, "solver": "local", "beta": 0.0}
    grid = [{**sparse, "ndcg@100": 0.1}, {**sparse, "lam": 300.0, "ndcg@100": 0.2}]
    older["components"]["ease"] = {"grid": grid}
    titles = plots.training_curves({"shop": result.report, "older run": older}, out)
    assert titles[0] == [f"shop: {c}" for c in plots.COMPONENTS]
    height, width, _ = image.imread(out).shape
    assert (width, height) == (1800, 720)  # 4 panels by 2 runs


def test_latency_distribution_draws_the_measured_percentiles(tmp_path):
    rng = np.random.default_rng(3)
    fast = list(rng.lognormal(np.log(0.004), 0.4, 2000))
    slow = list(rng.lognormal(np.log(0.012), 0.3, 3000))
    from scripts.bench import Run, plot_latencies

    run = Run("12k items", 12_000, latencies={"recommend": slow, "similar": fast})
    out = tmp_path / "latency.png"
    drawn = plot_latencies(out, [run])
    assert image.imread(out).shape[:2] == (400, 1200)
    assert list(drawn) == ["12k items: recommend", "12k items: similar"]
    for values, numbers in ((slow, drawn["12k items: recommend"]), (fast, drawn["12k items: similar"])):
        expected = np.percentile(np.asarray(values) * 1000, [50, 95, 99])
        assert [numbers["p50"], numbers["p95"], numbers["p99"]] == pytest.approx(expected)
        assert numbers["n"] == len(values)
    assert drawn["12k items: similar"]["p99"] < drawn["12k items: recommend"]["p50"]  # the two modes


def test_train_script_draws_its_curves(tmp_path):
    """`scripts/train.py --curves` on a tiny generic log: the figure of that run."""
    rows = [f"u{u},i{(u * 7 + j) % 40}" for u in range(150) for j in range(8)]
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\n" + "\n".join(rows) + "\n")
    config = tmp_path / "config.json"
    config.write_text('{"vae": {"epochs": 2}, "item_ae": {"epochs": 2}, "ease": {"lambdas": [100.0]}}')
    out = tmp_path / "curves.png"
    command = [sys.executable, "scripts/train.py", "--interactions", str(log), "--out", str(tmp_path / "a")]
    done = subprocess.run(
        [*command, "--config", str(config), "--curves", str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert image.imread(out).shape[:2] == (360, 1800)
