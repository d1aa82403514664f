"""Simulated shoppers for A/B experiments: the power of the service's test (through its HTTP
API) and its false-positive rate (A/A, in-process). The library of scripts/simulate_experiment.py.

The shoppers (``Shoppers``): each has a few favourite categories and a propensity to click
(Gamma-distributed, mean 1: some shoppers click much more than others, so one shopper's
clicks are correlated, the reason the analysis unit is the user). Shown a list, a shopper
clicks each item with probability

    p = base_rate * propensity * lift * a(item) / mean(a over the list)

where a(item) is ``interest_boost`` for an item of a favourite category and 1 otherwise: the
shopper clicks more on their own interests, and a list's expected click-through rate is
base_rate * propensity * lift whatever it holds. ``lift`` is the true effect: 1 in the
control, 1 + true_lift in the treatment. A click is followed by an add-to-cart with
probability ``cart_rate``, an add-to-cart by a purchase with probability ``purchase_rate``.

What does not cheat (``run_http``): a real server assigns the shoppers (the simulator learns
a shopper's variant from the answer, as a storefront would), records the impressions of the
lists it answers (implicit impressions) and counts the attributed feedback the shoppers send
through POST /v1/feedback/batch; significance is what GET /v1/admin/experiments/{id} says.
The true lift is the only thing the simulator knows that the service does not.
A/A (``aa_false_positive_rate``): the same shoppers and the same statistics code
(app.experiments.results), no HTTP, both groups with lift 1.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from app.experiments.definition import Experiment, assign
from app.experiments.results import build

CONTROL, TREATMENT = "control", "treatment"


@dataclass(frozen=True)
class ShopperConfig:
    base_rate: float = 0.05  # control click-through rate per shown item
    true_lift: float = 0.10  # the treatment's relative click-through lift
    propensity_shape: float = 4.0  # Gamma shape of the shoppers' propensity (mean 1)
    interests: int = 20  # favourite categories per shopper
    interest_boost: float = 4.0  # a favourite's click weight relative to another item
    cart_rate: float = 0.3
    purchase_rate: float = 0.3


@dataclass(frozen=True)
class SimulationConfig:
    shoppers: int = 2000
    visits: int = 2  # lists per shopper
    k: int = 50  # items per list
    connections: int = 8
    batch: int = 500  # feedback events per POST
    shopper: ShopperConfig = field(default_factory=ShopperConfig)


@dataclass
class Shopper:
    user_id: str
    favourites: frozenset[str]
    propensity: float


def shoppers(
    user_ids: list[str], categories: list[str], config: ShopperConfig, rng: random.Random
) -> list[Shopper]:
    np_rng = np.random.default_rng(rng.randrange(2**32))
    propensity = np_rng.gamma(config.propensity_shape, 1 / config.propensity_shape, size=len(user_ids))
    return [
        Shopper(u, frozenset(rng.sample(categories, min(config.interests, len(categories)))), float(p))
        for u, p in zip(user_ids, propensity, strict=True)
    ]


def react(
    shopper: Shopper, categories: list[str | None], lift: float, config: ShopperConfig, rng: random.Random
) -> list[tuple[int, str]]:
    """(position, event) of what a shopper does with one list of items (their categories)."""
    weights = [config.interest_boost if c in shopper.favourites else 1.0 for c in categories]
    mean = sum(weights) / len(weights)
    out = []
    for position, weight in enumerate(weights):
        p = min(1.0, config.base_rate * shopper.propensity * lift * weight / mean)
        if rng.random() < p:
            out.append((position, "click"))
            if rng.random() < config.cart_rate:
                out.append((position, "add_to_cart"))
                if rng.random() < config.purchase_rate:
                    out.append((position, "purchase"))
    return out


# -- through the HTTP API ---------------------------------------------------------------------
@dataclass
class HttpRun:
    seed: int
    results: dict[str, Any]  # GET /v1/admin/experiments/{id}
    sent: dict[str, Counter[str]]  # per group, what the simulator sent (and was shown)

    @property
    def ctr_p_value(self) -> float | None:
        treatment = next(g for g in self.results["groups"] if g["name"] == TREATMENT)
        comparison = (treatment["vs_control"] or {}).get("click_through_rate")
        return None if comparison is None else float(comparison["p_value"])

    @property
    def significant(self) -> bool:
        p = self.ctr_p_value
        return p is not None and p < 0.05


def experiment_body() -> dict[str, Any]:
    # Both variants serve the same lists: the difference is the shoppers' (the true lift).
    return {
        "description": "simulated: does the treatment lift click-through?",
        "variants": {CONTROL: {"share": 0.5}, TREATMENT: {"share": 0.5}},
    }


async def run_http(
    url: str,
    *,
    user_ids: list[str],
    categories: list[str],
    seed: int,
    config: SimulationConfig,
    headers: dict[str, str] | None = None,
) -> HttpRun:
    """One seeded experiment against a running server (implicit impressions on)."""
    rng = random.Random(seed)
    crowd = shoppers(rng.sample(user_ids, config.shoppers), categories, config.shopper, rng)
    experiment_id = f"sim-{seed}"
    sent: dict[str, Counter[str]] = {CONTROL: Counter(), TREATMENT: Counter()}
    users: dict[str, set[str]] = {CONTROL: set(), TREATMENT: set()}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        (await http.put(f"/v1/admin/experiments/{experiment_id}", json=experiment_body())).raise_for_status()
        (await http.post(f"/v1/admin/experiments/{experiment_id}/start")).raise_for_status()
        pending: list[dict[str, Any]] = []
        gate = asyncio.Semaphore(config.connections)

        async def visit(shopper: Shopper, visit_rng: random.Random) -> None:
            async with gate:
                answer = await http.get(
                    f"/v1/users/{shopper.user_id}/recommendations", params={"k": config.k}
                )
            body = answer.raise_for_status().json()
            group = body["variant"]
            lift = 1.0 + config.shopper.true_lift if group == TREATMENT else 1.0
            items = body["items"]
            actions = react(shopper, [i.get("category") for i in items], lift, config.shopper, visit_rng)
            sent[group]["impression"] += len(items)
            users[group].add(shopper.user_id)
            rid = body["recommendation_id"]
            for position, event in actions:
                sent[group][event] += 1
                # An event id makes a retried batch idempotent: counted once however often sent.
                pending.append(
                    {"user_id": shopper.user_id, "item_id": items[position]["item_id"], "event": event,
                     "recommendation_id": rid, "position": position, "event_id": f"{rid}-{position}-{event}"}
                )  # fmt: skip
            if len(pending) >= config.batch:
                await flush()

        async def flush() -> None:
            batch = pending[:]
            pending.clear()
            if batch:
                async with gate:
                    await _post_retrying(http, "/v1/feedback/batch", {"events": batch})

        for _ in range(config.visits):
            await asyncio.gather(*(visit(s, random.Random(rng.randrange(2**32))) for s in crowd))
        await flush()
        (await http.post(f"/v1/admin/experiments/{experiment_id}/stop")).raise_for_status()
        results = (await http.get(f"/v1/admin/experiments/{experiment_id}")).raise_for_status().json()
    for group, members in users.items():
        sent[group]["users"] = len(members)
    return HttpRun(seed=seed, results=results, sent=sent)


async def _post_retrying(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], attempts: int = 10
) -> None:
    """POST, retrying a 503 after its Retry-After (as a storefront's queue would): on a busy
    machine Redis may miss the service's timeout."""
    for _ in range(attempts - 1):
        answer = await http.post(path, json=body)
        if answer.status_code != 503:
            answer.raise_for_status()
            return
        await asyncio.sleep(min(float(answer.headers.get("retry-after", 1)), 2.0))
    (await http.post(path, json=body)).raise_for_status()


# -- in-process (A/A) ---------------------------------------------------------------------------
def aa_false_positive_rate(
    runs: int,
    *,
    config: SimulationConfig,
    interest_share: float = 0.1,
    seed: int = 0,
    lift: float = 1.0,
    progress: Callable[[int], None] | None = None,
) -> tuple[float, list[float]]:
    """(share of runs where the treatment's click-through differs at p < .05, the p-values)
    of ``runs`` experiments whose groups get the same lists and the same shoppers' model
    (``lift`` other than 1 turns it into an A/B, for power). In-process: each shopper sees
    ``visits`` lists of ``k`` items, each a favourite with probability ``interest_share``;
    the per-user counts go through the same sums and statistics code as the service's."""
    shopper = config.shopper
    p_values = []
    np_rng = np.random.default_rng(seed)
    for run in range(runs):
        experiment = Experiment.model_validate({"id": f"aa-{seed}-{run}", **experiment_body()})
        n = config.shoppers
        propensity = np_rng.gamma(shopper.propensity_shape, 1 / shopper.propensity_shape, size=n)
        groups = np.array([assign(experiment, f"user-{run}-{u}").group == TREATMENT for u in range(n)])
        # Per list: how many favourites it holds, then the clicks on each kind (binomial:
        # the same model as react(), drawn per list instead of per item).
        k = config.k
        favourites = np_rng.binomial(k, interest_share, size=(n, config.visits))
        mean = (favourites * shopper.interest_boost + (k - favourites)) / k
        scale = shopper.base_rate * propensity[:, None] * np.where(groups, lift, 1.0)[:, None] / mean
        p_favourite = np.minimum(1.0, scale * shopper.interest_boost)
        p_other = np.minimum(1.0, scale)
        clicks = np_rng.binomial(favourites, p_favourite) + np_rng.binomial(k - favourites, p_other)
        clicks = clicks.sum(axis=1).astype(float)
        impressions = np.full(n, float(config.visits * k))
        totals = {
            name: _sums(impressions[mask], clicks[mask])
            for name, mask in ((CONTROL, ~groups), (TREATMENT, groups))
        }
        results = build(experiment, totals, min_users=100, min_outcomes=20)
        treatment = next(g for g in results.groups if g.name == TREATMENT)
        assert treatment.vs_control is not None
        p_values.append(treatment.vs_control["click_through_rate"].p_value)
        if progress is not None:
            progress(run)
    return sum(p < 0.05 for p in p_values) / runs, p_values


def _sums(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The counters the service keeps, from per-user counts (impressions x, clicks y)."""
    return {
        "users": float(len(x)),
        "impression": float(x.sum()),
        "impression:sq": float((x * x).sum()),
        "click": float(y.sum()),
        "click:sq": float((y * y).sum()),
        "click:x": float((x * y).sum()),
    }


# -- the whole study (scripts/simulate_experiment.py) ---------------------------------------------
@dataclass(frozen=True)
class Study:
    artifacts: Any  # Path of DIR/current
    seeds: int = 20
    aa_runs: int = 200
    simulation: SimulationConfig = field(default_factory=SimulationConfig)


def http_study(study: Study, *, log: Callable[[str], None] = print) -> list[HttpRun]:
    """``seeds`` experiments, one after the other, against one real uvicorn server on a
    private redis-server (implicit impressions on)."""
    import tempfile
    from pathlib import Path

    from app.scoring import artifact
    from tools.server import AUTH, api_env, private_redis, uvicorn_process

    loaded = artifact.load(study.artifacts)
    categories = sorted({str(i["category"]) for i in loaded.items if i.get("category")})
    runs = []
    with tempfile.TemporaryDirectory() as folder, private_redis(Path(folder)) as redis:
        # A generous Redis timeout: a list whose record could not be written in time would
        # lose its impressions and its attribution (the answer itself never fails for it).
        env = api_env(study.artifacts, redis_url=redis.url, prefix="sim", implicit_impressions=True,
                      redis_timeout_s=5)  # fmt: skip
        with uvicorn_process(env) as api:
            for seed in range(study.seeds):
                run = asyncio.run(
                    run_http(api.url, user_ids=list(loaded.users), categories=categories, seed=seed,
                             config=study.simulation, headers=AUTH)
                )  # fmt: skip
                log(f"seed {seed}: click-through p = {run.ctr_p_value:.4f}, {_ctr_line(run)}")
                runs.append(run)
    return runs


def _ctr_line(run: HttpRun) -> str:
    parts = []
    for group in run.results["groups"]:
        rate = group["rates"]["click_through_rate"]["value"]
        parts.append(
            f"{group['name']} {group['clicks']}/{group['impressions']} = {rate:.4f} ({group['users']} users)"
        )
    return "; ".join(parts)


def report(study: Study, runs: list[HttpRun], aa_rate: float, *, power_in_process: float) -> str:
    """The Markdown section of docs/evaluation.md."""
    sim, shopper = study.simulation, study.simulation.shopper
    significant = sum(r.significant for r in runs)
    matched = all(_counts_match(r) for r in runs)
    lifts = [
        (next(g for g in r.results["groups"] if g["name"] == TREATMENT)["vs_control"] or {})
        .get("click_through_rate", {})
        .get("relative_lift")
        for r in runs
    ]
    lines = [
        "## A/B experiments: power and false positives (`scripts/simulate_experiment.py`)",
        "",
        f"Simulated shoppers (tools/simulation.py): base click-through rate {shopper.base_rate:.0%}, "
        f"true lift {shopper.true_lift:.0%} in the treatment, propensity Gamma(shape "
        f"{shopper.propensity_shape:g}, mean 1) per shopper, {shopper.interests} favourite categories "
        f"clicked {shopper.interest_boost:g}x as often. {sim.shoppers:,} shoppers per experiment, "
        f"{sim.visits} lists of {sim.k} items each.",
        "",
        f"- **A/B through the HTTP API** (a real uvicorn server and Redis, implicit impressions, attributed "
        f"feedback in batches, the verdict read from `GET /v1/admin/experiments/{{id}}`): the lift was "
        f"significant (p < .05) in **{significant} of {len(runs)} seeds** ({significant / len(runs):.0%}); "
        f"measured relative lifts {min(lifts):+.1%} to {max(lifts):+.1%} (median "
        f"{float(np.median(lifts)):+.1%}). Every count the endpoint reported equalled what the simulator "
        f"sent: {'yes' if matched else 'NO'}.",
        f"- **A/A in-process** (same shoppers' model, same statistics code, no HTTP): false-positive rate "
        f"**{aa_rate:.3f}** over {study.aa_runs} seeded runs (nominal 0.05).",
        f"- For reference, the same in-process model with the 10% lift: power {power_in_process:.0%} over "
        f"{study.aa_runs} runs.",
        "",
        "| seed | control CTR | treatment CTR | relative lift | p-value |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        groups = {g["name"]: g for g in run.results["groups"]}
        c, t = (
            groups[CONTROL]["rates"]["click_through_rate"],
            groups[TREATMENT]["rates"]["click_through_rate"],
        )
        lift = (groups[TREATMENT]["vs_control"] or {}).get("click_through_rate", {}).get("relative_lift")
        lines.append(
            f"| {run.seed} | {c['value']:.4f} | {t['value']:.4f} | {lift:+.1%} | {run.ctr_p_value:.4f} |"
        )
    return "\n".join(lines) + "\n"


def _counts_match(run: HttpRun) -> bool:
    """The endpoint counted exactly what was shown and sent (nothing lost, nothing invented)."""
    fields = {"users": "users", "impressions": "impression", "clicks": "click", "add_to_carts": "add_to_cart",
              "purchases": "purchase"}  # fmt: skip
    for group in run.results["groups"]:
        sent = run.sent[group["name"]]
        if any(group[name] != sent[key] for name, key in fields.items()):
            return False
    return True
