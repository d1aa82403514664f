"""Attribution and A/B experiments against the real Redis: recommendation ids, sticky
assignment, attributed feedback, the counters behind the results, the admin life cycle."""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from app.config import Settings
from app.experiments import stats
from app.experiments.definition import HOLDOUT, Experiment, assign, bucket
from tests.conftest import app_client

TWO = {"variants": {"control": {"share": 0.5}, "ease": {"share": 0.5, "weights": {"ease": 1}}}}


def experiment(**fields) -> Experiment:
    return Experiment.model_validate({"id": "e1", **TWO, **fields})


# -- assignment (pure) --------------------------------------------------------------------
def test_assignment_is_sticky_and_follows_the_shares():
    three = experiment(
        variants={"control": {"share": 0.2}, "b": {"share": 0.3}, "c": {"share": 0.5}}, holdout=0.1
    )
    users = [f"u{n}" for n in range(20_000)]
    groups = Counter(assign(three, u).group for u in users)
    expected = {HOLDOUT: 0.1, "control": 0.18, "b": 0.27, "c": 0.45}
    for group, share in expected.items():
        assert abs(groups[group] / len(users) - share) < 0.012, (group, groups)
    assert all(assign(three, u) == assign(three, u) for u in users[:100])  # sticky
    # Another experiment id reshuffles the users (no user is always in the first variant).
    other = experiment(id="e2")
    same = sum(assign(experiment(), u).group == assign(other, u).group for u in users)
    assert 0.45 < same / len(users) < 0.55
    assert 0 <= bucket("e1", "u1") < 1 and bucket("e1", "u1") == bucket("e1", "u1")


def test_the_delta_method_matches_per_user_arrays():
    rng = np.random.default_rng(3)
    x = rng.poisson(20, 500) + 1
    y = rng.binomial(x, rng.beta(2, 30, 500))
    sums = stats.Sums(n=500, x=x.sum(), y=y.sum(), xx=(x * x).sum(), yy=(y * y).sum(), xy=(x * y).sum())
    rate = stats.ratio(sums)
    r = y.sum() / x.sum()
    residual = y - r * x  # the linearised ratio: Var(R) ~ Var(mean(y - R x)) / mean(x)^2
    expected = residual.std(ddof=1) / math.sqrt(500) / x.mean()
    assert rate.value == pytest.approx(r)
    assert rate.se == pytest.approx(expected, rel=1e-9)
    same = stats.difference(rate, rate)
    assert same is not None and same.p_value == 1.0
    assert stats.ratio(stats.Sums(0, 0, 0, 0, 0, 0)).value is None


# -- the service ----------------------------------------------------------------------------
async def define_and_start(http, experiment_id="ab1", body=TWO):
    defined = await http.put(f"/v1/admin/experiments/{experiment_id}", json=body)
    assert defined.status_code == 200, defined.text
    started = await http.post(f"/v1/admin/experiments/{experiment_id}/start")
    assert started.status_code == 200, started.text
    return Experiment.model_validate(started.json())


async def test_responses_carry_ids_and_the_sticky_variant(client):
    plain = (await client.get("/v1/users/u1/recommendations")).json()
    assert (
        len(plain["recommendation_id"]) == 32 and plain["experiment_id"] is None and plain["variant"] is None
    )
    running = await define_and_start(client)
    for user in ("u1", "u2", "u3", "u4", "u5", "u6"):
        first = (await client.get(f"/v1/users/{user}/recommendations")).json()
        again = (await client.post("/v1/recommendations", json={"user_id": user})).json()
        assert first["experiment_id"] == again["experiment_id"] == "ab1"
        assert first["variant"] == again["variant"] == assign(running, user).group
        assert first["recommendation_id"] != again["recommendation_id"]
    # Anonymous visitors are assigned by their session; without one, by nothing.
    session = (await client.post("/v1/recommendations", json={"items": [], "session_id": "s-1"})).json()
    assert session["variant"] == assign(running, "s-1").group
    anonymous = (await client.post("/v1/recommendations", json={"items": []})).json()
    assert anonymous["experiment_id"] is None and len(anonymous["recommendation_id"]) == 32


async def test_attributed_feedback_is_counted_per_user(client, redis_client, prefix):
    running = await define_and_start(client)
    users = [f"buyer{n}" for n in range(12)]
    expected: dict[str, Counter[str]] = {g: Counter() for g in running.group_names()}
    per_user: dict[str, Counter[str]] = {}
    for n, user in enumerate(users):
        answer = (await client.get(f"/v1/users/{user}/recommendations", params={"k": 5})).json()
        rid, items = answer["recommendation_id"], [i["item_id"] for i in answer["items"]]
        events = [
            {"user_id": user, "item_id": item, "event": "impression", "recommendation_id": rid, "position": p}
            for p, item in enumerate(items)
        ]
        clicks = n % 3
        events += [
            {"user_id": user, "item_id": items[p], "event": "click", "recommendation_id": rid, "position": p}
            for p in range(clicks)
        ]
        if n % 4 == 0:
            events.append(
                {"user_id": user, "item_id": items[0], "event": "purchase", "recommendation_id": rid}
            )
        events.append({"user_id": user, "item_id": items[1], "event": "click"})  # not attributed: not counted
        stored = await client.post("/v1/feedback/batch", json={"events": events})
        assert stored.status_code == 202, stored.text
        counts = Counter(e["event"] for e in events if "recommendation_id" in e)
        per_user[user] = counts
        expected[answer["variant"]] += counts
    # A forged id and another user's list count for nothing.
    forged = {"user_id": users[0], "item_id": "x", "event": "click", "recommendation_id": "nope"}
    assert (await client.post("/v1/feedback", json=forged)).status_code == 202

    results = (await client.get("/v1/admin/experiments/ab1")).json()
    by_group = {g["name"]: g for g in results["groups"]}
    for group, counts in expected.items():
        g = by_group[group]
        assert (g["impressions"], g["clicks"], g["purchases"]) == (
            counts["impression"],
            counts["click"],
            counts["purchase"],
        ), group
        members = [u for u in users if assign(running, u).group == group]
        assert g["users"] == len(members)
        if counts["impression"]:
            x = np.array([per_user[u]["impression"] for u in members], float)
            y = np.array([per_user[u]["click"] for u in members], float)
            sums = stats.Sums(len(x), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum())
            assert g["rates"]["click_through_rate"]["value"] == pytest.approx(stats.ratio(sums).value)
            low = g["rates"]["click_through_rate"]["low"]
            se = stats.ratio(sums).se
            assert low == (None if se is None else pytest.approx(stats.ratio(sums).value - stats.Z95 * se))
    assert results["control"] == "control"
    assert by_group["ease"]["vs_control"] is not None
    assert any("fewer than 100 users" in w for w in results["warnings"])
    assert not any(c["significant"] for c in by_group["ease"]["vs_control"].values())

    # The stream records which list, variant and model version each event came from.
    entries, _ = await client.app.state.shoprec.store.read_events()
    attributed = [e for e in entries if e["recommendation_id"] and e["recommendation_id"] != "nope"]
    assert attributed and all(e["experiment_id"] == "ab1" and e["list_version"] for e in attributed)
    assert all(e["variant"] == assign(running, e["user_id"]).group for e in attributed)
    assert {e["position"] for e in attributed if e["event"] == "impression"} == {"0", "1", "2", "3", "4"}
    assert [e["variant"] for e in entries if e["recommendation_id"] == "nope"] == [""]


async def test_a_variant_changes_what_is_served(client, trained):
    result, _ = trained
    user = result.data.user_ids[result.data.train_users[0]]
    body = {"variants": {"control": {"share": 0.001}, "pop": {"share": 0.999, "strategy": "popular"}}}
    await define_and_start(client, "pop", body)
    answer = (await client.get(f"/v1/users/{user}/recommendations")).json()
    assert answer["variant"] == "pop" and answer["strategy"] == "popular"
    assert (await client.post("/v1/admin/experiments/pop/stop")).status_code == 200
    assert (await client.get(f"/v1/users/{user}/recommendations")).json()["strategy"] == "personalized"


async def test_life_cycle_and_clear_4xx(client):
    assert (await client.get("/v1/admin/experiments")).json() == []
    assert (await client.post("/v1/admin/experiments/none/start")).status_code == 404
    assert (await client.get("/v1/admin/experiments/none")).status_code == 404
    await define_and_start(client, "one")
    assert (await client.put("/v1/admin/experiments/two", json=TWO)).status_code == 200
    second = await client.post("/v1/admin/experiments/two/start")
    assert second.status_code == 409 and "one is running" in second.json()["error"]["message"]
    assert (await client.put("/v1/admin/experiments/one", json=TWO)).status_code == 409  # started
    assert (await client.post("/v1/admin/experiments/one/stop")).json()["status"] == "stopped"
    assert (await client.post("/v1/admin/experiments/one/start")).status_code == 409  # stopped for good
    assert (await client.post("/v1/admin/experiments/two/start")).json()["status"] == "running"
    listed = (await client.get("/v1/admin/experiments")).json()
    assert [(e["id"], e["status"]) for e in listed] == [("one", "stopped"), ("two", "running")]
    one = {"share": 1}
    bad = [
        {"variants": {"control": one}},
        {"variants": {"a": one, "b": one}},  # no control
        {"variants": {"control": {"share": 0}, "b": one}},
        {**TWO, "holdout": 0.9},
        {**TWO, "holdout": False},
        {**TWO, "colour": "red"},
        {"variants": {"control": one, "b": {"share": 1, "weights": {"nope": 1}}}},
        {"variants": {"control": one, "b": {"share": 1, "weights": {"ease": 0}}}},
        {"variants": {"control": one, "b": {"share": 1, "diversity": 1.5}}},
        {"variants": {"control": one, HOLDOUT: one}},
        {"variants": {"control": one, "a b": one}},
        {"variants": [{"name": "control", "share": 1}, {"name": "b", "share": 1}]},
    ]
    for body in bad:
        answer = await client.put("/v1/admin/experiments/bad", json=body)
        assert answer.status_code == 422, (body, answer.text)
    assert (await client.put("/v1/admin/experiments/bad:id", json=TWO)).status_code == 422


async def test_feedback_attribution_fields_are_validated(client):
    cases = [
        {"user_id": "u", "item_id": "i", "event": "click", "position": 1},  # no list
        {"user_id": "u", "item_id": "i", "event": "click", "recommendation_id": "r", "position": -1},
        {"user_id": "u", "item_id": "i", "event": "click", "recommendation_id": "r", "position": "1"},
        {"user_id": "u", "item_id": "i", "event": "click", "recommendation_id": "r", "position": 1000},
        {"user_id": "u", "item_id": "i", "event": "click", "recommendation_id": ""},
    ]
    for body in cases:
        assert (await client.post("/v1/feedback", json=body)).status_code == 422, body


async def test_a_refresh_read_before_a_start_does_not_undo_it(client):
    """A periodic refresh whose Redis read was answered before this process started an
    experiment must not apply that older state after the start (it used to stop serving
    variants until the next refresh: a flaky test on a slow cluster)."""
    book = client.app.state.shoprec.experiments
    read, release = asyncio.Event(), asyncio.Event()
    real_all = book.store.all

    async def read_then_wait():
        experiments = await real_all()
        read.set()
        await release.wait()
        return experiments

    book.store.all = read_then_wait
    try:
        stale = asyncio.create_task(book.refresh())
        await read.wait()  # the refresh holds Redis's state from before the start
        book.store.all = real_all
        running = await define_and_start(client, "late")
        release.set()
        await stale
    finally:
        book.store.all = real_all
    assert book.running is not None and book.running.id == running.id
    answer = (await client.get("/v1/users/racer/recommendations")).json()
    assert answer["variant"] == assign(running, "racer").group
    await book.refresh()  # the next refresh reads the start and keeps it
    assert book.running is not None and book.running.id == running.id


async def test_every_process_applies_the_same_assignment(settings_factory, redis_client):
    settings = settings_factory(experiments_refresh_s=0.05)
    async with app_client(settings) as one, app_client(settings) as two:
        running = await define_and_start(one, "shared")
        for _ in range(100):
            if two.app.state.shoprec.experiments.running is not None:
                break
            await asyncio.sleep(0.02)
        for user in (f"p{n}" for n in range(20)):
            a = (await one.get(f"/v1/users/{user}/recommendations")).json()["variant"]
            b = (await two.get(f"/v1/users/{user}/recommendations")).json()["variant"]
            assert a == b == assign(running, user).group
        await one.post("/v1/admin/experiments/shared/stop")
        for _ in range(100):
            if two.app.state.shoprec.experiments.running is None:
                break
            await asyncio.sleep(0.02)
        assert (await two.get("/v1/users/p1/recommendations")).json()["variant"] is None


async def test_implicit_impressions_record_the_list(settings_factory, redis_client):
    async with app_client(settings_factory(implicit_impressions=True)) as http:
        running = await define_and_start(http, "imp")
        answer = (await http.get("/v1/users/shopper/recommendations", params={"k": 7})).json()
        await http.app.state.shoprec.attribution.flush()  # written just behind the answer
        entries, _ = await http.app.state.shoprec.store.read_events()
        shown = [e for e in entries if e["event"] == "impression"]
        assert [e["item_id"] for e in sorted(shown, key=lambda e: int(e["position"]))] == [
            i["item_id"] for i in answer["items"]
        ]
        assert {e["recommendation_id"] for e in shown} == {answer["recommendation_id"]}
        assert {e["variant"] for e in shown} == {assign(running, "shopper").group}
        click = {"user_id": "shopper", "item_id": answer["items"][2]["item_id"], "event": "click",
                 "recommendation_id": answer["recommendation_id"], "position": 2}  # fmt: skip
        assert (await http.post("/v1/feedback", json=click)).status_code == 202
        results = (await http.get("/v1/admin/experiments/imp")).json()
        group = next(g for g in results["groups"] if g["name"] == answer["variant"])
        assert (group["users"], group["impressions"], group["clicks"]) == (1, 7, 1)
        # Not in the live history: shown is not seen (exclude_history=seen keeps them).
        recent = await http.app.state.shoprec.store.recent("shopper")
        assert [e.event for e in recent] == ["click"]


async def test_attribution_off_records_nothing(settings_factory, redis_client, prefix):
    async with app_client(settings_factory(attribution=False)) as http:
        await define_and_start(http, "off")
        answer = (await http.get("/v1/users/someone/recommendations")).json()
        assert answer["recommendation_id"] and answer["variant"] is not None
        click = {"user_id": "someone", "item_id": answer["items"][0]["item_id"], "event": "click",
                 "recommendation_id": answer["recommendation_id"], "position": 0}  # fmt: skip
        assert (await http.post("/v1/feedback", json=click)).status_code == 202
        keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*:rec:*")]
        assert keys == []
        results = (await http.get("/v1/admin/experiments/off")).json()
        assert sum(g["clicks"] for g in results["groups"]) == 0


@pytest.mark.slow
async def test_counters_survive_restarts_of_the_api_and_of_redis(settings_factory, private_redis):
    """Counters live in Redis (append-only file, fsync every second): a new API process and
    a Redis killed with SIGKILL and restarted read the same results."""
    settings = settings_factory(redis_url=private_redis.url, implicit_impressions=True)
    async with app_client(settings) as http:
        await define_and_start(http, "durable")
        for n in range(20):
            user = f"d{n}"
            answer = (await http.get(f"/v1/users/{user}/recommendations", params={"k": 3})).json()
            click = {"user_id": user, "item_id": answer["items"][0]["item_id"], "event": "click",
                     "recommendation_id": answer["recommendation_id"], "position": 0}  # fmt: skip
            if n % 2:
                assert (await http.post("/v1/feedback", json=click)).status_code == 202
        before = (await http.get("/v1/admin/experiments/durable")).json()
    assert sum(g["impressions"] for g in before["groups"]) == 60
    assert sum(g["clicks"] for g in before["groups"]) == 10
    async with app_client(settings) as http:  # the API restarted
        assert (await http.get("/v1/admin/experiments/durable")).json()["groups"] == before["groups"]
    await asyncio.sleep(1.5)  # appendfsync everysec
    private_redis.kill()
    private_redis.start()
    async with app_client(settings) as http:  # and Redis too
        after = (await http.get("/v1/admin/experiments/durable")).json()
        assert after["groups"] == before["groups"]
        assert after["experiment"]["status"] == "running"
        # Still counting, and still sticky: d1's next click adds to the same group.
        answer = (await http.get("/v1/users/d1/recommendations", params={"k": 3})).json()
        click = {"user_id": "d1", "item_id": answer["items"][0]["item_id"], "event": "click",
                 "recommendation_id": answer["recommendation_id"], "position": 0}  # fmt: skip
        assert (await http.post("/v1/feedback", json=click)).status_code == 202
        final = {g["name"]: g for g in (await http.get("/v1/admin/experiments/durable")).json()["groups"]}
        old = {g["name"]: g for g in before["groups"]}
        assert final[answer["variant"]]["clicks"] == old[answer["variant"]]["clicks"] + 1


async def test_experiments_defined_by_configuration(settings_factory, redis_client, tmp_path, monkeypatch):
    configured = [
        {"id": "from-file", "status": "running", **TWO},
        {"id": "later", "variants": {"control": {"share": 1}, "b": {"share": 1, "strategy": "popular"}}},
    ]
    path = tmp_path / "experiments.json"
    path.write_text(json.dumps(configured))
    async with app_client(settings_factory(experiments_file=path)) as http:
        listed = {e["id"]: e["status"] for e in (await http.get("/v1/admin/experiments")).json()}
        assert listed == {"from-file": "running", "later": "draft"}
        assert (await http.get("/v1/users/u1/recommendations")).json()["experiment_id"] == "from-file"
        assert (await http.post("/v1/admin/experiments/from-file/stop")).status_code == 200
    # What Redis holds wins over the file at the next start: the stopped one stays stopped.
    async with app_client(settings_factory(experiments_file=path)) as http:
        listed = {e["id"]: e["status"] for e in (await http.get("/v1/admin/experiments")).json()}
        assert listed == {"from-file": "stopped", "later": "draft"}
    monkeypatch.setenv("SHOPREC_EXPERIMENTS_FILE", "")
    assert Settings().experiments_file is None
    path.write_text('[{"id": "bad", "variants": {}}]')
    with pytest.raises(ValidationError):  # a broken file fails start-up
        async with app_client(settings_factory(experiments_file=path)):
            pass


async def test_a_variants_diversity_replaces_the_requests(client, trained):
    result, _ = trained
    user = result.data.user_ids[result.data.train_users[1]]

    async def ids(**body):
        answer = (await client.post("/v1/recommendations", json={"user_id": user, "k": 10, **body})).json()
        return [i["item_id"] for i in answer["items"]], answer["variant"]

    plain, _ = await ids()
    diverse, _ = await ids(diversity=1.0)
    assert diverse != plain  # diversity changes this list (main's re-ranking)
    body = {"variants": {"control": {"share": 0.001}, "diverse": {"share": 0.999, "diversity": 1.0}}}
    await define_and_start(client, "div", body)
    served, variant = await ids()
    assert variant == "diverse" and served == diverse
    assert (await ids(diversity=0.0))[0] == diverse  # the experiment decides, not the request


async def test_the_holdout_is_served_the_defaults_and_reported(client):
    running = await define_and_start(client, "held", {**TWO, "holdout": 0.5})
    users = [f"h{n}" for n in range(40)]
    held = [u for u in users if assign(running, u).group == HOLDOUT]
    assert 5 < len(held) < 35
    for user in held[:3]:
        answer = (await client.get(f"/v1/users/{user}/recommendations", params={"k": 3})).json()
        assert (answer["experiment_id"], answer["variant"]) == ("held", HOLDOUT)
        click = {"user_id": user, "item_id": answer["items"][0]["item_id"], "event": "click",
                 "recommendation_id": answer["recommendation_id"], "position": 0}  # fmt: skip
        assert (await client.post("/v1/feedback", json=click)).status_code == 202
    groups = {g["name"]: g for g in (await client.get("/v1/admin/experiments/held")).json()["groups"]}
    assert list(groups) == ["control", "ease", HOLDOUT]
    assert (groups[HOLDOUT]["users"], groups[HOLDOUT]["clicks"]) == (3, 3)
    assert groups[HOLDOUT]["vs_control"] is not None


# -- records written behind the answer -------------------------------------------------------
SESSION = {"items": ["P00001", "P00002"], "k": 3}


def record_key(settings: Settings, unit: str, recommendation_id: str) -> str:
    from app.store.keys import Keys

    return Keys(settings.redis_prefix, settings.redis_shards).recommendation(unit, recommendation_id)


async def test_concurrent_answers_share_the_writes_of_their_records(settings_factory, redis_client):
    settings = settings_factory()
    async with app_client(settings) as http:
        answers = await asyncio.gather(
            *(http.post("/v1/recommendations", json={**SESSION, "session_id": f"v{n}"}) for n in range(40))
        )
        store = http.app.state.shoprec.attribution
        await store.flush()
        for n, answer in enumerate(answers):
            body = answer.json()
            record = await redis_client.hgetall(record_key(settings, f"v{n}", body["recommendation_id"]))
            assert record["model_version"] == body["model_version"], n
        assert 1 <= store.writes < 40  # answers that finish while a write is in flight share the next


async def test_flush_returns_once_the_records_queued_before_it_are_written(settings_factory, redis_client):
    from app.store.attribution import Served

    settings = settings_factory()
    async with app_client(settings) as http:
        store = http.app.state.shoprec.attribution
        await redis_client.ping()  # connected, so that the check below goes out first
        served = Served("r1", "unit-1", "", "", "v1", "personalized", ["P00001"])
        store.record(served)  # queued: the writer has not run yet
        assert await redis_client.exists(record_key(settings, "unit-1", "r1")) == 0
        await store.flush()
        assert (await redis_client.hgetall(record_key(settings, "unit-1", "r1")))["model_version"] == "v1"


@pytest.mark.slow
async def test_an_answer_does_not_wait_for_redis_and_shutdown_waits_for_its_record(
    settings_factory, private_redis
):
    """Redis paused (SIGSTOP): a session's list is answered at once, not after the Redis
    timeout; shutting the app down waits for the record, which lands when Redis resumes."""
    import signal
    import time

    settings = settings_factory(redis_url=private_redis.url, redis_timeout_s=3.0)
    app = app_client(settings)
    http = await app.__aenter__()
    try:
        assert (
            await http.post("/v1/recommendations", json={**SESSION, "session_id": "warm"})
        ).status_code == 200
        await http.app.state.shoprec.attribution.flush()
        private_redis.process.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        answer = await http.post("/v1/recommendations", json={**SESSION, "session_id": "paused"})
        assert answer.status_code == 200 and time.monotonic() - started < 1.5
    except BaseException:
        private_redis.process.send_signal(signal.SIGCONT)
        await app.__aexit__(None, None, None)
        raise
    closing = asyncio.create_task(app.__aexit__(None, None, None))
    await asyncio.sleep(2.0)  # the other background tasks stop within a second
    assert not closing.done()  # the record is still on its way
    private_redis.process.send_signal(signal.SIGCONT)
    await asyncio.wait_for(closing, timeout=10)
    record = private_redis.client().hgetall(
        record_key(settings, "paused", answer.json()["recommendation_id"])
    )
    assert record["model_version"] == answer.json()["model_version"]


async def test_records_beyond_the_queue_bound_are_dropped_oldest_first(private_redis):
    """Redis paused while the writer sends r1: of the five records queued behind it, the two
    oldest are dropped (and reported), so that no more than three wait; the rest land when
    Redis resumes."""
    import signal

    from app.store.attribution import AttributionStore, Served
    from app.store.connect import connect
    from app.store.keys import Keys

    client = connect(private_redis.url, cluster=False, timeout_s=5.0)
    keys = Keys("bound", 4)
    errors = []
    store = AttributionStore(
        client, keys, record_ttl_s=60, experiment_ttl_s=60, implicit=False,
        on_error=lambda exc, where: errors.append(exc.message), max_queued=3,
    )  # fmt: skip
    try:
        store.record(Served("r0", "u0", "", "", "v", "personalized", ["a"]))
        await store.flush()
        private_redis.process.send_signal(signal.SIGSTOP)
        store.record(Served("r1", "u1", "", "", "v", "personalized", ["a"]))
        await asyncio.sleep(0.2)  # the writer has sent r1 and waits for the answer
        for n in range(2, 7):
            store.record(Served(f"r{n}", f"u{n}", "", "", "v", "personalized", ["a"]))
        assert errors == ["3 records wait for redis: the oldest dropped"] * 2
        private_redis.process.send_signal(signal.SIGCONT)
        await asyncio.wait_for(store.flush(), timeout=10)
        stored = {n for n in range(7) if private_redis.client().exists(keys.recommendation(f"u{n}", f"r{n}"))}
        assert stored == {0, 1, 4, 5, 6}
    finally:
        private_redis.process.send_signal(signal.SIGCONT)
        await client.aclose()


async def test_closing_stops_a_writer_that_redis_holds_and_a_new_one_starts_later(private_redis):
    """Redis paused: ``close`` gives up after its timeout and cancels the writer (its record
    is lost, and flush no longer waits for it); records queued afterwards get a new writer."""
    import signal
    import time

    from app.store.attribution import AttributionStore, Served
    from app.store.connect import connect
    from app.store.keys import Keys

    client = connect(private_redis.url, cluster=False, timeout_s=5.0)
    keys = Keys("closing", 4)
    store = AttributionStore(client, keys, record_ttl_s=60, experiment_ttl_s=60, implicit=False)
    try:
        store.record(Served("r0", "u0", "", "", "v", "personalized", ["a"]))
        await store.flush()  # the script is loaded
        private_redis.process.send_signal(signal.SIGSTOP)
        store.record(Served("r1", "u1", "", "", "v", "personalized", ["a"]))
        started = time.monotonic()
        await store.close(timeout_s=0.3)
        assert time.monotonic() - started < 2.0
        await asyncio.wait_for(store.flush(), timeout=1)  # nothing left to wait for
        private_redis.process.send_signal(signal.SIGCONT)
        store.record(Served("r2", "u2", "", "", "v", "personalized", ["a"]))
        await asyncio.wait_for(store.flush(), timeout=10)
        assert private_redis.client().exists(keys.recommendation("u2", "r2")) == 1
    finally:
        private_redis.process.send_signal(signal.SIGCONT)
        await client.aclose()
