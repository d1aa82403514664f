"""The experiment simulation, small: through a real uvicorn server and Redis, the results
endpoint counts exactly what the simulated shoppers were shown and sent; A/A in-process keeps
its false-positive rate near the nominal 5%. (scripts/simulate_experiment.py is the full run.)"""

from __future__ import annotations

import asyncio

import pytest

from app.scoring import artifact
from tools.server import AUTH, api_env, uvicorn_process
from tools.simulation import (
    CONTROL,
    TREATMENT,
    ShopperConfig,
    SimulationConfig,
    _counts_match,
    aa_false_positive_rate,
    run_http,
)


def test_aa_false_positive_rate_over_200_runs():
    rate, p_values = aa_false_positive_rate(200, config=SimulationConfig(), seed=1)
    assert len(p_values) == 200 and all(0 <= p <= 1 for p in p_values)
    assert rate <= 0.07
    power, _ = aa_false_positive_rate(50, config=SimulationConfig(), seed=2, lift=1.5)
    assert power >= 0.9  # and a large true lift is found: the test is not just conservative


@pytest.mark.slow
def test_a_small_experiment_through_the_http_api(artifacts_dir, redis_url, prefix, redis_client):
    loaded = artifact.load(artifacts_dir)
    categories = sorted({str(i["category"]) for i in loaded.items if i.get("category")})
    config = SimulationConfig(shoppers=150, visits=2, k=10, batch=100, shopper=ShopperConfig(true_lift=0.5))
    env = api_env(
        artifacts_dir, redis_url=redis_url, prefix=prefix, implicit_impressions=True, redis_timeout_s=5
    )
    with uvicorn_process(env) as api:
        run = asyncio.run(
            run_http(api.url, user_ids=list(loaded.users), categories=categories, seed=3, config=config,
                     headers=AUTH)
        )  # fmt: skip
    groups = {g["name"]: g for g in run.results["groups"]}
    assert set(groups) == {CONTROL, TREATMENT}
    assert groups[CONTROL]["users"] + groups[TREATMENT]["users"] == 150
    assert _counts_match(run), (run.results["groups"], run.sent)
    assert sum(g["impressions"] for g in groups.values()) == 150 * 2 * 10
    assert run.results["experiment"]["status"] == "stopped"
    assert 0 <= run.ctr_p_value <= 1
