"""Faults under load, against real processes: Redis killed (SIGKILL) and restarted from its
append-only file, Redis too slow, the API process killed and restarted, a reload mid-load.
Nothing acknowledged is lost; recommendations keep answering throughout.

No step waits a fixed time for the load to have done something: each waits for what it
needs (so many answers, a recovery), with deadlines far above the normal time, and the one
timing claim (a stalled Redis costs the timeout, not the stall) leaves a wide margin. They
hold on a busy 2-core machine (run 20 times beside a process spinning a core).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
import redis

from app.scoring import artifact
from app.store.keys import Keys
from tests.conftest import app_client
from tools.server import server_env, uvicorn_process

pytestmark = pytest.mark.slow


async def until(condition: Callable[[], bool], what: str, *, seconds: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {seconds:g} s")
        await asyncio.sleep(0.05)


def stream_event_ids(client: redis.Redis, prefix: str) -> Counter[str]:
    ids: Counter[str] = Counter()
    for stream in Keys(prefix).all_streams():
        for _, fields in client.xrange(stream):
            ids[fields["event_id"]] += 1
    return ids


async def test_redis_sigkill_during_feedback_load_loses_no_acknowledged_event(
    private_redis, artifacts_dir, prefix
):
    env = server_env(artifacts_dir, private_redis.url, prefix, redis_timeout_s="0.5", log_requests="false")
    acked: set[str] = set()
    statuses: Counter[int] = Counter()
    recommendation_statuses: Counter[tuple[int, bool]] = Counter()
    pending = [f"ev-{n}" for n in range(100_000)]
    stop = asyncio.Event()

    async def send_feedback(http: httpx.AsyncClient, worker: int) -> None:
        retry: list[str] = []
        while not stop.is_set() or retry:
            event_id = retry.pop() if retry else pending.pop()
            event = {"user_id": f"u{worker}-{event_id[-2:]}", "item_id": "P00001", "event": "view"}
            try:
                response = await http.post("/v1/feedback", json={**event, "event_id": event_id})
                statuses[response.status_code] += 1
            except httpx.TransportError:
                statuses[0] += 1
                response = None
            if response is not None and response.status_code == 202:
                acked.add(event_id)
            else:  # not acknowledged: the client retries the same event_id later
                retry.append(event_id)
                await asyncio.sleep(0.05)

    async def ask_recommendations(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            response = await http.get("/v1/users/anyone/recommendations", params={"k": 5})
            recommendation_statuses[response.status_code, response.json().get("live_feedback")] += 1
            await asyncio.sleep(0.01)

    with uvicorn_process(env) as api:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
            tasks = [asyncio.create_task(send_feedback(http, w)) for w in range(8)]
            tasks.append(asyncio.create_task(ask_recommendations(http)))
            await until(lambda: len(acked) >= 200, "200 acknowledged events before the kill")
            acked_before_kill = len(acked)
            private_redis.kill()
            rejected = statuses[503]
            await until(lambda: statuses[503] >= rejected + 20, "503 answers during the outage")
            await until(lambda: recommendation_statuses[200, False] >= 5, "degraded recommendations")
            private_redis.start()  # same --dir: the append-only file is replayed
            deadline = time.monotonic() + 60
            while (await http.get("/readyz")).json().get("redis") != "up":  # it reconnects by itself
                assert time.monotonic() < deadline, "the API did not see Redis come back"
                await asyncio.sleep(0.05)
            after_restart = len(acked)
            await until(
                lambda: len(acked) >= after_restart + 200, "200 acknowledged events after the restart"
            )
            stop.set()
            await asyncio.gather(*tasks)

    stored = stream_event_ids(private_redis.client(), prefix)
    assert set(acked) <= set(stored), f"lost: {sorted(set(acked) - set(stored))[:10]}"
    assert max(stored.values()) == 1  # retried ids were stored once
    assert {status for status, _ in recommendation_statuses} == {200}
    assert recommendation_statuses[200, False] > 0  # degraded, and saying so
    print(f"\nacked {len(acked)} (before the kill {acked_before_kill}), stored {len(stored)}")
    print(f"feedback statuses {dict(statuses)}, recommendations {dict(recommendation_statuses)}")


async def test_slow_redis_times_out_at_the_bound(private_redis, settings_factory):
    settings = settings_factory(redis_url=private_redis.url, redis_timeout_s=0.3)
    async with app_client(settings) as http:
        assert (
            await http.post("/v1/feedback", json={"user_id": "u", "item_id": "i", "event": "view"})
        ).is_success
        # Every client's commands now wait 10 s (DEBUG SLEEP is disabled by default on Redis 7).
        private_redis.client().client_pause(STALL_MS, all=True)

        async def timed(request):
            started = time.perf_counter()
            response = await request
            return response, time.perf_counter() - started

        started = time.perf_counter()
        answers = await asyncio.gather(
            *(
                timed(http.post("/v1/feedback", json={"user_id": f"u{n}", "item_id": "i", "event": "view"}))
                for n in range(20)
            ),
            *(timed(http.get(f"/v1/users/u{n}/recommendations")) for n in range(20)),
        )
        elapsed = time.perf_counter() - started
        private_redis.kill()  # so the app shuts down without waiting for the stall to end
    feedback, recommendations = answers[:20], answers[20:]
    assert all(r.status_code == 503 for r, _ in feedback)
    assert all(r.status_code == 200 and r.json()["live_feedback"] is False for r, _ in recommendations)
    # Bounded by the timeout (0.3 s), not by the 10 s stall; nothing piled up behind it. (A
    # bound of half the stall: the claim is timeout-not-stall, and a busy machine may well
    # take a second or two for 40 requests.)
    slowest = max(seconds for _, seconds in answers)
    print(f"\n40 requests in a {STALL_MS / 1000:g} s stall: slowest {slowest:.2f} s, all in {elapsed:.2f} s")
    assert slowest < STALL_MS / 2000 and elapsed < STALL_MS / 2000


STALL_MS = 10_000


async def test_api_killed_under_load_comes_back_serving_the_same_version(artifacts_dir, redis_url, prefix):
    env = server_env(artifacts_dir, redis_url, prefix, log_requests="false")
    version = artifact.resolve(artifacts_dir).name
    phase = "before"
    outcomes: Counter[tuple[str, int | str]] = Counter()
    stop = asyncio.Event()

    async def load(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            seen = phase
            try:
                response = await http.get("/v1/users/anyone/recommendations")
                outcomes[seen, response.status_code] += 1
            except httpx.TransportError:
                outcomes[seen, "refused"] += 1
                await asyncio.sleep(0.05)

    with uvicorn_process(env) as api:
        async with httpx.AsyncClient(base_url=api.url, timeout=5) as http:
            tasks = [asyncio.create_task(load(http)) for _ in range(4)]
            await until(lambda: outcomes["before", 200] >= 20, "20 answers before the kill")
            phase = "down"
            api.process.send_signal(signal.SIGKILL)
            api.process.wait()
            await asyncio.sleep(0.5)
            # The same command again, on the same port, while the load goes on (the start,
            # which waits for /readyz, runs in a thread so the load is not paused).
            restarted = uvicorn_process(env, port=api.port)
            await asyncio.to_thread(restarted.__enter__)
            try:
                phase = "after"
                assert (await http.get("/v1/model")).json()["model_version"] == version
                await until(lambda: outcomes["after", 200] >= 20, "20 answers after the restart")
                stop.set()
                await asyncio.gather(*tasks)
            finally:
                await asyncio.to_thread(restarted.__exit__, None, None, None)
    print(f"\nAPI killed under load: {dict(outcomes)}")
    assert outcomes["before", 200] >= 20 and outcomes["after", 200] >= 20
    # Requests in flight at the kill and those sent while it is down fail to connect; none
    # is answered with an error, and none fails once it is back.
    assert {status for _, status in outcomes} <= {200, "refused"}
    assert not [status for phase, status in outcomes if phase == "after" and status != 200]


async def test_reload_and_rollback_under_load_fail_no_request(artifacts_dir, redis_url, prefix, tmp_path):
    from tests.test_reload import add_version

    folder = tmp_path / "artifacts"
    folder.mkdir()
    add_version(artifacts_dir, folder, "v1", "2026-01-01T00:00:00")
    add_version(artifacts_dir, folder, "v2", "2026-02-01T00:00:00")
    artifact.publish(folder, "v1")
    artifact.publish(folder, "v2")
    env = server_env(folder, redis_url, prefix, log_requests="false", api_keys='{"adm": "admin"}')
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    stop = asyncio.Event()

    async def load(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            response = await http.post("/v1/recommendations", json={"items": ["P00001", "P00002"], "k": 10})
            statuses[response.status_code] += 1
            versions[response.json().get("model_version")] += 1

    with uvicorn_process(env) as api:
        async with httpx.AsyncClient(base_url=api.url, timeout=10, headers={"x-api-key": "adm"}) as http:
            tasks = [asyncio.create_task(load(http)) for _ in range(8)]
            for step in ("rollback", "reload", "rollback", "reload", "end"):
                wanted = statuses.total() + 25
                await until(lambda w=wanted: statuses.total() >= w, f"25 answers before the {step}")
                if step == "reload":
                    artifact.publish(folder, "v2")
                if step != "end":
                    assert (await http.post(f"/v1/admin/{step}")).status_code == 200
            stop.set()
            await asyncio.gather(*tasks)
    print(f"\nreload/rollback under load: statuses {dict(statuses)}, versions {dict(versions)}")
    assert set(statuses) == {200} and statuses.total() >= 125
    assert set(versions) == {"v1", "v2"}  # both served, no request failed in between
