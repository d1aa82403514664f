"""The evaluation report machinery on the synthetic shop (small and fast)."""

from __future__ import annotations

import pytest

from models.config import TrainConfig
from models.report import cold_start_experiment, served_metrics, write_report
from tests.conftest import FAST_CONFIG


@pytest.mark.slow
def test_cold_start_experiment_and_report(shop, trained, tmp_path):
    result, artifacts_dir = trained
    config = TrainConfig.from_dict({**FAST_CONFIG, "vae": {**FAST_CONFIG["vae"], "epochs": 3}})
    cold = cold_start_experiment(shop, config, result, log=lambda m: None)
    assert cold["_users"]["n"] > 0
    # Ranking unseen items through the content->CF map beats random order.
    assert cold["content->cf map"]["ndcg@10"] > cold["random"]["ndcg@10"]
    served = served_metrics(artifacts_dir)
    assert served["blend"] == pytest.approx(result.metrics["blend"])  # published = served
    res = {
        "metrics": served,
        "counts": result.report["counts"],
        "dropped": result.report["cleaning"]["dropped"],
        "weights": result.weights,
        "ease": {"lambda": 100.0, "alpha": 0.0},
        "vae_history": result.report["vae"]["history"],
        "vae_best_epoch": 1,
        "vae_seconds_per_epoch": 1.0,
        "train_seconds": 1.0,
        "cold_start": cold,
    }
    out = tmp_path / "evaluation.md"
    write_report({"synthetic": res}, out, command="test", machine="test")
    text = out.read_text()
    assert "| blend |" in text and "content->cf map" in text
    assert (tmp_path / "training_curves.png").stat().st_size > 0
    assert (tmp_path / "metrics.png").stat().st_size > 0


def test_report_sections_are_replaced_in_place(tmp_path):
    from tools.markdown import replace_section

    page = tmp_path / "benchmarks.md"
    replace_section(page, "bench", "# Bench\nold")
    replace_section(page, "soak", "## Soak\n1")
    replace_section(page, "bench", "# Bench\nnew")
    text = page.read_text()
    assert text.index("# Bench\nnew") < text.index("## Soak\n1") and "old" not in text
