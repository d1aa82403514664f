"""The command-line doors: the user's own input errors are one line and exit code 2; anything
else is a bug, and reads as one (a traceback, exit code 1). Retraining never falls back to
the demo shop unless asked to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.scoring import artifact
from models.config import TrainConfig
from models.errors import NoServingModel
from models.retrain import RetrainOptions, retrain
from tests.conftest import FAST_CONFIG

ROOT = Path(__file__).resolve().parents[1]


def boom(*args, **kwargs):
    raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")


def test_retrain_refuses_without_a_serving_model(tmp_path, capsys):
    """Found from outside: retrain.py --artifacts EMPTY_DIR exited 0 after publishing the demo
    shop there (the compose trainer runs it by default)."""
    from scripts.retrain import main

    empty = tmp_path / "artifacts"
    empty.mkdir()
    assert main(["--artifacts", str(empty), "--archive", str(tmp_path / "archive")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no readable serving model") and "--synthetic" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert list(empty.iterdir()) == []  # nothing trained, nothing published


def test_retrain_refuses_an_unreadable_current(tmp_path, redis_url, prefix):
    folder = tmp_path / "artifacts"
    (folder / "v1").mkdir(parents=True)
    (folder / "v1" / "manifest.json").write_text("{not json")
    (folder / "current").symlink_to("v1")
    options = RetrainOptions(folder, tmp_path / "archive", redis_url, redis_prefix=prefix)
    with pytest.raises(NoServingModel, match="no readable serving model"):
        retrain(options, log=lambda m: None)


@pytest.mark.slow
def test_retrain_with_synthetic_trains_and_publishes_the_demo_shop(tmp_path, redis_url, prefix):
    small = {
        **FAST_CONFIG,
        "vae": {**FAST_CONFIG["vae"], "epochs": 2, "hidden": 64, "latent": 16},
        "item_ae": {**FAST_CONFIG["item_ae"], "epochs": 2},
        "ease": {"lambdas": [300.0], "attribute_weights": [0.0], "dropouts": [0.0], "user_exponents": [0.0]},
        "blend": {"grid": [0.0, 1.0], "rounds": 1},
    }
    empty = tmp_path / "artifacts"
    options = RetrainOptions(empty, tmp_path / "archive", redis_url, redis_prefix=prefix, synthetic=True,
                             config=TrainConfig.from_dict(small))  # fmt: skip
    outcome = retrain(options, log=lambda m: None)
    assert outcome.published and artifact.resolve(empty).name == outcome.version
    assert artifact.load(empty).manifest.source["kind"] == "synthetic"


def test_a_bad_config_is_one_line_and_exit_code_2(tmp_path, capsys):
    from scripts.train import main

    config = tmp_path / "config.json"
    for content, message in (
        ({"vae": {"epochz": 3}}, "unknown config key vae.epochz"),
        ({"vae": 3}, "config section 'vae' must be a JSON object"),
        ([1, 2], "a config is a JSON object"),
    ):
        config.write_text(json.dumps(content))
        assert main(["--synthetic", "--out", str(tmp_path / "out"), "--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {config}: ") and message in err and err.count("\n") == 1


@pytest.mark.slow
def test_a_bug_is_a_traceback_and_exit_code_1(tmp_path):
    """A ValueError from numpy or Keras is not the user's bad input (it used to exit 2)."""
    code = "\n".join(
        [
            "import sys",
            "import models.pipeline",
            "from tests.test_cli import boom",
            "models.pipeline.run = boom",
            "from scripts.train import main",
            f"sys.exit(main(['--synthetic', '--out', {str(tmp_path / 'out')!r}]))",
        ]
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" in done.stderr and "could not be broadcast" in done.stderr
    assert not (tmp_path / "out").exists()


def test_every_cli_lets_a_bug_through(tmp_path, monkeypatch, artifacts_dir):
    import models.report
    import models.retrain
    from scripts.evaluate import main as evaluate
    from scripts.retrain import main as retrain_main

    monkeypatch.setattr(models.retrain, "retrain", boom)
    with pytest.raises(ValueError, match="broadcast"):
        retrain_main(["--artifacts", str(artifacts_dir), "--archive", str(tmp_path / "archive")])
    monkeypatch.setattr(models.report, "served_metrics", boom)
    heldout = tmp_path / "heldout.csv"
    heldout.write_text("user_id,item_id\nh1,P00001\nh1,P00002\nh2,P00003\nh2,P00004\n")
    with pytest.raises(ValueError, match="broadcast"):
        evaluate(["--artifacts", str(artifacts_dir), "--interactions", str(heldout)])
