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
from tools.load import Stats

ROOT = Path(__file__).resolve().parents[1]


def test_training_curves_draw_every_component(trained, tmp_path):
    result, _ = trained
    out = tmp_path / "curves.png"
    older = {"components": {"vae": result.report["components"]["vae"]}}  # no other component recorded
    titles = plots.training_curves({"shop": result.report, "older run": older}, out)
    assert titles[0] == [f"shop: {c}" for c in plots.COMPONENTS]
    height, width, _ = image.imread(out).shape
    assert (width, height) == (1800, 720)  # 4 panels by 2 runs


def test_latency_distribution_draws_the_measured_percentiles(tmp_path):
    rng = np.random.default_rng(3)
    half = Stats(latencies=list(rng.lognormal(np.log(0.004), 0.4, 2000)), seconds=10.0)
    full = Stats(latencies=list(rng.lognormal(np.log(0.012), 0.3, 3000)), seconds=10.0)
    from scripts.bench import plot_latencies

    out = tmp_path / "latency.png"
    drawn = plot_latencies(out, rec=full, half=half)
    assert image.imread(out).shape[:2] == (400, 1200)
    (half_name, half_drawn), (full_name, full_drawn) = drawn.items()
    assert half_name.startswith("half of max (200 req/s") and full_name.startswith(
        "max throughput (300 req/s"
    )
    for stats, numbers in ((half, half_drawn), (full, full_drawn)):
        expected = np.percentile(np.asarray(stats.latencies) * 1000, [50, 95, 99])
        assert [numbers["p50"], numbers["p95"], numbers["p99"]] == pytest.approx(expected)
        assert numbers["n"] == len(stats.latencies)
    assert half_drawn["p99"] < full_drawn["p50"]  # the sample's two modes, as drawn


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
