"""Against a real 3-master Redis Cluster started here: feedback, live history, catalog,
reload notifications and the archive/trim path of retraining."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import time

import pytest
import redis

from app.store.keys import Keys
from models.retrain import _read, _trim
from tests.conftest import app_client, wait_subscribed
from tools.server import NO_PERSISTENCE, start_redis

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
    reason="needs redis-server and redis-cli",
)


CLUSTER_NODE = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", *NO_PERSISTENCE)


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is valid and free too."""
    for _ in range(100):
        port = random.randint(20000, 40000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ports: list[int] = []
    while len(ports) < 3:
        port = cluster_port()
        if all(abs(port - p) > 1 for p in ports):
            ports.append(port)
    servers = []
    try:
        for port in ports:
            folder = tmp_path_factory.mktemp(f"node{port}")
            servers.append(start_redis(folder, port, *CLUSTER_NODE))
        nodes = [f"127.0.0.1:{p}" for p in ports]
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        url = f"redis://127.0.0.1:{ports[0]}/0"
        for _ in range(100):
            info = subprocess.run(
                ["redis-cli", "-p", str(ports[0]), "cluster", "info"], capture_output=True, text=True
            )
            if "cluster_state:ok" in info.stdout:
                break
            time.sleep(0.1)
        yield url
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_a_users_keys_share_one_slot(cluster):
    client = redis.RedisCluster.from_url(cluster)
    keys = Keys("shoprec:v1")
    for user in ("u1", "someone", "ümlaut", "a{b}c"):
        shard = keys.shard(user)
        attribution = (
            keys.recommendation(user, "rid"),
            keys.experiment_user("exp", user),
            keys.experiment_totals("exp", "control", shard),
        )
        slots = {
            client.keyslot(k)
            for k in (keys.recent(user), keys.seen_event(user, "e"), keys.events_stream(shard), *attribution)
        }
        assert len(slots) == 1
    assert len({client.keyslot(s) for s in keys.all_streams()}) > 1  # streams spread over the cluster
    client.close()


async def test_attribution_and_experiment_results_on_a_cluster(cluster, settings_factory):
    settings = settings_factory(redis_url=cluster, redis_cluster=True, implicit_impressions=True)
    two = {"variants": {"control": {"share": 1}, "b": {"share": 1}}}
    async with app_client(settings) as http:
        assert (await http.put("/v1/admin/experiments/cl", json=two)).status_code == 200
        assert (await http.post("/v1/admin/experiments/cl/start")).status_code == 200
        clicks: dict[str, int] = {"control": 0, "b": 0}
        for n in range(30):
            user = f"cl-user-{n}"
            answer = (await http.get(f"/v1/users/{user}/recommendations", params={"k": 4})).json()
            events = [
                {"user_id": user, "item_id": answer["items"][p]["item_id"], "event": "click",
                 "recommendation_id": answer["recommendation_id"], "position": p}
                for p in range(n % 3)
            ]  # fmt: skip
            if events:
                assert (await http.post("/v1/feedback/batch", json={"events": events})).status_code == 202
            clicks[answer["variant"]] += len(events)
        results = (await http.get("/v1/admin/experiments/cl")).json()
        groups = {g["name"]: g for g in results["groups"]}
        assert sum(g["users"] for g in groups.values()) == 30
        assert sum(g["impressions"] for g in groups.values()) == 120  # implicit: 4 per list
        assert {name: g["clicks"] for name, g in groups.items()} == clicks


@pytest.mark.slow
async def test_service_on_a_cluster(cluster, settings_factory, prefix, tmp_path):
    settings = settings_factory(redis_url=cluster, redis_cluster=True)
    async with app_client(settings) as one, app_client(settings) as two:
        assert (await one.get("/readyz")).status_code == 200
        events = [
            {"user_id": f"cu{n}", "item_id": f"i{n % 7}", "event": "click", "event_id": f"ce{n}"}
            for n in range(200)
        ]
        first = await one.post("/v1/feedback/batch", json={"events": events})
        assert first.status_code == 202 and first.json()["accepted"] == 200
        again = await one.post("/v1/feedback/batch", json={"events": events[:10]})
        assert again.json()["duplicates"] == 10
        top = (await two.post("/v1/recommendations", json={"k": 1})).json()["items"][0]["item_id"]
        await one.post("/v1/feedback", json={"user_id": "buyer", "item_id": top, "event": "purchase"})
        mine = (await two.get("/v1/users/buyer/recommendations")).json()
        assert mine["strategy"] == "personalized" and top not in [i["item_id"] for i in mine["items"]]

        # Catalog change and its notification across processes, through the cluster.
        client = one.app.state.shoprec.publisher
        await wait_subscribed(client, prefix, 2)
        assert (
            await one.put("/v1/items/CL-NEW", json={"title": "Elm lamp", "category": "lighting"})
        ).status_code == 200
        for _ in range(100):
            if (await two.get("/v1/items/CL-NEW")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the catalog change did not reach the other process")

    # Retraining's read -> archive -> trim path over the cluster's streams.
    from models.retrain import RetrainOptions

    options = RetrainOptions(artifacts_dir=tmp_path, archive_dir=tmp_path / "archive", redis_url=cluster,
                             redis_prefix=prefix, redis_cluster=True)  # fmt: skip
    read, cursor = await _read(options, {})
    assert {e["event_id"] for e in read} >= {f"ce{n}" for n in range(200)}
    await asyncio.to_thread(_trim, options, cursor)
    assert (await _read(options, cursor))[0] == []
    assert (await _read(options, {}))[0] == []  # trimmed


async def test_concurrent_answers_records_all_land_on_a_cluster(cluster, settings_factory):
    """Written behind the answers, several at once (one script call per record: each
    writes its own slot), all on their nodes."""
    settings = settings_factory(redis_url=cluster, redis_cluster=True)
    session = {"items": ["P00001", "P00002"], "k": 3}
    async with app_client(settings) as http:
        answers = await asyncio.gather(
            *(http.post("/v1/recommendations", json={**session, "session_id": f"c{n}"}) for n in range(80))
        )
        store = http.app.state.shoprec.attribution
        await store.flush()
        assert store.writes < 80  # answers shared writes
    client = redis.RedisCluster.from_url(cluster, decode_responses=True)
    keys = Keys(settings.redis_prefix, settings.redis_shards)
    try:
        for n, answer in enumerate(answers):
            record = client.hgetall(keys.recommendation(f"c{n}", answer.json()["recommendation_id"]))
            assert record["model_version"] == answer.json()["model_version"], n
    finally:
        client.close()
