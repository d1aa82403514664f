"""The evaluation behind make eval, on a small synthetic shop: test users leave the data
before cleaning and training, the artifact is scored on their raw targets through the serving
code, the references follow the same protocol, and the report is written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.config import TrainConfig
from models.data import Dataset
from models.report import Heldout, evaluate_dataset, hold_out, map_heldout, served_metrics
from models.report_page import write_report
from models.synthetic import ShopConfig, generate
from tests.conftest import FAST_CONFIG


def test_test_users_leave_the_data_before_cleaning(shop):
    config = TrainConfig()
    train, heldout = hold_out(shop, config)
    test_users = set(heldout.user_ids)
    assert len(test_users) == round(0.1 * shop.interactions["user_id"].nunique())
    assert not test_users & set(train.interactions["user_id"])
    assert len(train.interactions) + (shop.interactions["user_id"].isin(test_users)).sum() == len(
        shop.interactions
    )
    for foldin, targets in zip(heldout.foldin, heldout.targets, strict=True):
        assert foldin and targets and not {i for i, _ in foldin} & set(targets)
        assert len(targets) == max(1, round(0.2 * (len(foldin) + len(targets))))


def test_a_target_the_model_does_not_know_is_a_miss():
    heldout = Heldout(["u1", "u2"], [[("a", 4.0), ("zz", 1.0)], [("b", 4.0)]], [["b", "new"], ["new"]])
    mapped = map_heldout(heldout, ["a", "b", "c"])
    assert mapped.foldin.toarray().tolist() == [[4.0, 0, 0], [0, 4.0, 0]]  # "zz" unknown: dropped
    assert mapped.target.shape == (2, 4) and mapped.target.toarray().tolist() == [[0, 1, 0, 1], [0, 0, 0, 1]]


@pytest.mark.slow
def test_evaluation_end_to_end(tmp_path):
    """Both trainings (with and without attributes), every reference, the rare-item check and
    the cold-start experiment on a small shop; the served numbers are what the artifact serves."""
    shop = generate(ShopConfig(n_users=500, n_items=120, seed=3))
    rare = pd.DataFrame(
        [{"user_id": "U00001", "item_id": "ONCE", "event": "purchase", "value": 1.0, "timestamp": 2e9}]
    )
    shop = Dataset(pd.concat([shop.interactions, rare], ignore_index=True), shop.items)
    config = TrainConfig.from_dict({**FAST_CONFIG, "vae": {**FAST_CONFIG["vae"], "epochs": 4}})
    res = evaluate_dataset(
        shop, config, work_dir=tmp_path / "work", log=lambda m: None, cold_start=True, rare_items=True
    )
    served = res["attributes"]["metrics"]
    train, heldout = hold_out(shop, config)
    again, _ = served_metrics(tmp_path / "work" / "attributes" / "current", heldout)
    assert again["blend"] == pytest.approx(served["blend"])  # evaluated = served
    refs = res["references"]
    assert set(refs) == {"popular", "item-knn", "ease (plain)", "als", "mult-vae (paper)"}
    assert served["blend"]["ndcg@100"] > 1.2 * refs["popular"]["ndcg@100"]
    assert res["interactions only"]["metrics"]["blend"]["ndcg@100"] > refs["popular"]["ndcg@100"]
    # Every user of the training file trained the served model (refit), test users none.
    assert res["attributes"]["counts"]["users"] == train.interactions["user_id"].nunique()
    retrieval = res["retrieval"]  # two-stage against exhaustive, with category filters
    assert retrieval["no filter"]["overlap@10"] > 0.9 and len(retrieval) >= 4
    assert retrieval["no filter"]["overlap@10, k=10"] > 0.9  # a short list's own (smaller) pools
    assert all(row["full lists"] == 1.0 for name, row in retrieval.items() if name != "pools")
    curve = {row["diversity"]: row for row in res["diversity"]}  # accuracy against diversity
    assert curve[0.0]["ndcg@10"] == pytest.approx(served["blend"]["ndcg@10"])  # the served list
    assert curve[0.9]["ild@10"] > curve[0.0]["ild@10"]
    rare_items = res["rare_items"]
    assert rare_items["before"]["counts"]["items"] < res["attributes"]["counts"]["items"]
    cold = res["cold_start"]  # its real numbers are in docs/evaluation.md: too few items here
    assert cold["_users"]["cold_items"] == 12 and cold["_users"]["n"] > 0
    assert cold["popularity (oracle)"]["ndcg@10"] > cold["random"]["ndcg@10"]
    out = tmp_path / "evaluation.md"
    out.write_text("## What we tried\n\nwritten by hand\n")
    write_report({"synthetic": res}, out, command="test", machine="test")
    text = out.read_text()
    assert text.startswith("## What we tried\n\nwritten by hand\n")  # kept around the generated part
    assert "| **served blend** |" in text and "| als |" in text and "interactions only" in text
    assert "content->cf map" in text and "minimum counts 5 (before)" in text and "top-10 overlap" in text
    assert (tmp_path / "training_curves.png").stat().st_size > 0
    assert (tmp_path / "metrics.png").stat().st_size > 0
    assert "| diversity | ndcg@10 |" in text and (tmp_path / "diversity.png").stat().st_size > 0
    assert np.isfinite(served["blend"]["ndcg@100"])


@pytest.mark.slow
def test_a_quick_evaluation_trains_only_the_served_model(tmp_path):
    """No references, no interactions-only training: one training, and a report without them."""
    shop = generate(ShopConfig(n_users=300, n_items=80, seed=4))
    config = TrainConfig.from_dict({**FAST_CONFIG, "vae": {**FAST_CONFIG["vae"], "epochs": 2}})
    work, quiet = tmp_path / "work", lambda m: None
    res = evaluate_dataset(shop, config, work_dir=work, log=quiet, references=False, interactions_only=False)
    assert "interactions only" not in res and not (work / "interactions-only").exists()
    assert res["attributes"]["metrics"]["blend"]["ndcg@100"] > 0 and "retrieval" in res
    out = tmp_path / "evaluation.md"
    write_report({"synthetic": res}, out, command="test", machine="test")
    assert "| **served blend** |" in out.read_text() and "interactions only" not in out.read_text()


def test_report_sections_are_replaced_in_place(tmp_path):
    from tools.markdown import replace_section

    page = tmp_path / "benchmarks.md"
    replace_section(page, "bench", "# Bench\nold")
    replace_section(page, "soak", "## Soak\n1")
    replace_section(page, "bench", "# Bench\nnew")
    text = page.read_text()
    assert text.index("# Bench\nnew") < text.index("## Soak\n1") and "old" not in text


def test_evaluate_cli_scores_an_artifact_on_held_out_users(shop, artifacts_dir, tmp_path, capsys):
    from scripts.evaluate import main

    purchases = shop.interactions[shop.interactions["event"] == "purchase"].head(400)
    path = tmp_path / "heldout.csv"
    purchases.assign(user_id="new-" + purchases["user_id"])[["user_id", "item_id"]].to_csv(path, index=False)
    assert main(["--artifacts", str(artifacts_dir), "--interactions", str(path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert {"popular", "content", "vae", "ease", "blend"} <= set(lines)
    assert "ndcg@100" in lines["blend"]
