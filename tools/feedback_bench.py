"""Feedback ingestion through ``POST /v1/feedback/batch``, with attribution off and on, in
one run (the library of scripts/bench_feedback.py).

Method: one uvicorn worker pinned to core 0 with one BLAS thread; a private redis-server
(no persistence, flushed before each run) and this load generator pinned to core 1. Each run
starts a fresh server, asks it for one recommendation list per simulated user (k=10), and
sends batches of 1,000 events drawn from those lists: 70% impressions, 20% clicks, 7%
add-to-carts, 3% purchases, each with the list's ``recommendation_id`` and the item's
``position``. Attribution ``off`` (SHOPREC_ATTRIBUTION=false) stores the same events as
plain feedback; ``on`` runs an experiment, so every event also reads its list's record and
updates the user's and the variant's counters, in the same Lua call. Closed loop over a few
connections for ``seconds`` after a warm-up; events/s = accepted events / elapsed time.
Modes alternate (off, on, off, on, ...) so drift on a shared machine hits both.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tools.load import Request, run_load
from tools.server import AUTH, api_env, free_port, private_redis, spawn_api, stop, wait_ready

SINGLE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MIX = {"impression": 0.70, "click": 0.20, "add_to_cart": 0.07, "purchase": 0.03}
EXPERIMENT = {"variants": {"control": {"share": 0.5}, "b": {"share": 0.5, "weights": {"ease": 1.0}}}}


@dataclass(frozen=True)
class BenchConfig:
    artifacts: Path
    seconds: float = 10.0
    warmup_s: float = 2.0
    repeats: int = 3
    connections: int = 4
    batch: int = 1000
    users: int = 2000
    server_cpu: str = "0"
    load_cpu: int = 1


@dataclass(frozen=True)
class Measurement:
    mode: str  # "off" or "on"
    repeat: int
    events_per_s: float
    requests: int
    failed: int
    p50_ms: float
    p99_ms: float
    api_cpu_us: float  # CPU time of the API process per accepted event (user + system)
    redis_cpu_us: float  # the same for redis-server


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served_lists(url: str, users: int) -> list[tuple[str, str, list[str]]]:
    """(user, recommendation_id, item ids) of one k=10 list per user."""
    out = []
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as http:
        for n in range(users):
            user = f"bench-u{n}"
            answer = http.get(f"/v1/users/{user}/recommendations", params={"k": 10}).raise_for_status().json()
            out.append((user, answer["recommendation_id"], [i["item_id"] for i in answer["items"]]))
    return out


def batch_bodies(
    lists: list[tuple[str, str, list[str]]], *, batch: int, count: int, seed: int
) -> list[bytes]:
    """``count`` pre-drawn batch bodies (drawing them during the run would load the load core)."""
    rng = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    bodies = []
    for _ in range(count):
        events = []
        for _ in range(batch):
            user, rid, items = rng.choice(lists)
            position = rng.randrange(len(items))
            event = rng.choices(kinds, weights)[0]
            events.append(
                {"user_id": user, "item_id": items[position], "event": event,
                 "recommendation_id": rid, "position": position}
            )  # fmt: skip
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


def run_once(config: BenchConfig, *, mode: str, repeat: int, redis_url: str, redis_pid: int) -> Measurement:
    """One fresh server, one warm-up, one measured run."""
    prefix = f"bench-feedback:{uuid.uuid4().hex[:8]}"
    env = {
        **api_env(config.artifacts, redis_url=redis_url, prefix=prefix, attribution=mode == "on"),
        **SINGLE_THREAD,
    }
    port = free_port()
    command = ("uvicorn", "app.main:create_app", "--factory", "--port", "{port}", "--no-access-log",
               "--log-level", "warning")  # fmt: skip
    server = spawn_api(env, port, command=command, cpus=config.server_cpu)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process=server, seconds=120)
        if mode == "on":
            httpx.put(f"{url}/v1/admin/experiments/bench", json=EXPERIMENT, headers=AUTH).raise_for_status()
            httpx.post(f"{url}/v1/admin/experiments/bench/start", headers=AUTH).raise_for_status()
        lists = served_lists(url, config.users)
        bodies = batch_bodies(lists, batch=config.batch, count=40, seed=repeat)
        make = _cycle(bodies)
        load = {"connections": config.connections, "headers": AUTH}
        asyncio.run(run_load(url, make, seconds=config.warmup_s, **load))  # type: ignore[arg-type]
        api_before, redis_before = cpu_seconds(server.pid), cpu_seconds(redis_pid)
        stats = asyncio.run(run_load(url, make, seconds=config.seconds, **load))  # type: ignore[arg-type]
        api_cpu, redis_cpu = cpu_seconds(server.pid) - api_before, cpu_seconds(redis_pid) - redis_before
    finally:
        stop(server)
    accepted = stats.statuses.get(202, 0) * config.batch
    return Measurement(
        mode=mode,
        repeat=repeat,
        events_per_s=accepted / stats.seconds,
        requests=len(stats.latencies),
        failed=stats.failed(),
        p50_ms=stats.percentile(50) * 1000,
        p99_ms=stats.percentile(99) * 1000,
        api_cpu_us=api_cpu / max(accepted, 1) * 1e6,
        redis_cpu_us=redis_cpu / max(accepted, 1) * 1e6,
    )


def _cycle(bodies: list[bytes]) -> Callable[[random.Random], Request]:
    def make(rng: random.Random) -> Request:
        return "POST", "/v1/feedback/batch", rng.choice(bodies)

    return make


def run(config: BenchConfig, *, log: Callable[[str], None] = print) -> list[Measurement]:
    """Alternate off/on ``repeats`` times against a private Redis on the load core."""
    os.sched_setaffinity(0, {config.load_cpu})
    measurements = []
    with (
        tempfile.TemporaryDirectory() as folder,
        private_redis(Path(folder), cpus=str(config.load_cpu)) as redis,
    ):
        client = redis.client()
        try:
            for repeat in range(config.repeats):
                for mode in ("off", "on"):
                    client.flushall()
                    assert redis.process is not None
                    m = run_once(
                        config, mode=mode, repeat=repeat, redis_url=redis.url, redis_pid=redis.process.pid
                    )
                    log(f"attribution {mode}, run {repeat + 1}: {m.events_per_s:,.0f} events/s "
                        f"({m.requests} batches, {m.failed} failed, p99 {m.p99_ms:.1f} ms, CPU per event: "
                        f"API {m.api_cpu_us:.1f} µs, Redis {m.redis_cpu_us:.1f} µs)")  # fmt: skip
                    measurements.append(m)
        finally:
            client.close()
    return measurements


def report(config: BenchConfig, measurements: list[Measurement], *, machine: str) -> str:
    """The Markdown section of docs/benchmarks.md."""
    lines = [
        "## Feedback ingestion with attribution (`scripts/bench_feedback.py`)",
        "",
        f"{machine}. API: one uvicorn worker on core {config.server_cpu} (`taskset`, "
        f"OPENBLAS_NUM_THREADS=1); Redis and the load generator on core {config.load_cpu}. "
        f"Batches of {config.batch:,} events ({', '.join(f'{k} {v:.0%}' for k, v in MIX.items())}), "
        f"each naming its list and position, from {config.users:,} users; {config.connections} "
        f"connections, {config.seconds:g} s per run after {config.warmup_s:g} s of warm-up; "
        "modes alternate, a fresh server and an empty Redis per run.",
        "",
        "| attribution | runs (events/s) | median | spread (max-min)/median | p99 batch latency "
        "| API CPU per event | Redis CPU per event | with a core each to themselves |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, label in (("off", "off (baseline)"), ("on", "on, experiment running")):
        runs = [m for m in measurements if m.mode == mode]
        rates = [m.events_per_s for m in runs]
        median = statistics.median(rates)
        spread = (max(rates) - min(rates)) / median
        api_us = statistics.median(m.api_cpu_us for m in runs)
        redis_us = statistics.median(m.redis_cpu_us for m in runs)
        lines.append(
            f"| {label} | {', '.join(f'{r:,.0f}' for r in rates)} | {median:,.0f} | {spread:.0%} | "
            f"{statistics.median(m.p99_ms for m in runs):.0f} ms | {api_us:.1f} µs | {redis_us:.1f} µs | "
            f"{1e6 / max(api_us, redis_us):,.0f} events/s |"
        )
    failed = sum(m.failed for m in measurements)
    lines += [
        "",
        f"Failed batches: {failed}. CPU per event is the process's user + system time over the "
        "measured run divided by the events accepted (/proc/PID/stat): unlike events/s it does not "
        "count the time a process waited for a core another program held, so the last column, "
        "1 / the larger of the two, is what the pair would take with a core each to themselves "
        "(an estimate: it assumes the work overlaps fully; the load generator shares Redis's core).",
    ]
    return "\n".join(lines) + "\n"


# -- what attribution costs an answered list ------------------------------------------------------
@dataclass(frozen=True)
class ServeCost:
    mode: str  # off, on, implicit
    k: int
    redis_us: float  # Redis time of the attribution script per answered list (INFO commandstats)
    redis_bytes: float  # Redis memory added per answered list (used_memory)


SERVE_MODES = {"off": {"attribution": False}, "on": {}, "implicit": {"implicit_impressions": True}}


def serve_cost(artifacts: Path, *, ks: tuple[int, ...] = (10, 50), lists: int = 400) -> list[ServeCost]:
    """Per answered list, the Redis time and memory attribution adds (off, on, on with
    implicit impressions), in-process against a private redis-server, an experiment running."""
    return asyncio.run(_serve_costs(artifacts, ks, lists))


async def _serve_costs(artifacts: Path, ks: tuple[int, ...], lists: int) -> list[ServeCost]:
    from app.config import Settings
    from app.main import create_app

    out = []
    with tempfile.TemporaryDirectory() as folder, private_redis(Path(folder)) as redis:
        client = redis.client()
        for k in ks:
            for mode, settings in SERVE_MODES.items():
                prefix = f"cost-{mode}-{k}"
                config = Settings(artifacts_dir=artifacts, redis_url=redis.url, redis_prefix=prefix,
                                  log_requests=False, **settings)  # type: ignore[arg-type]  # fmt: skip
                app = create_app(config)
                async with (
                    app.router.lifespan_context(app),
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app), base_url="http://shoprec"
                    ) as http,
                ):
                    await http.put("/v1/admin/experiments/cost", json=EXPERIMENT)
                    await http.post("/v1/admin/experiments/cost/start")
                    client.config_resetstat()
                    before = client.info("memory")["used_memory"]
                    for n in range(lists):
                        answer = await http.get(f"/v1/users/cost-{n}/recommendations", params={"k": k})
                        answer.raise_for_status()
                    grown = client.info("memory")["used_memory"] - before
                    script = client.info("commandstats").get("cmdstat_evalsha", {"usec": 0})
                    await http.post("/v1/admin/experiments/cost/stop")
                out.append(ServeCost(mode, k, script["usec"] / lists, grown / lists))
        client.close()
    return out


def serve_cost_table(costs: list[ServeCost]) -> str:
    lines = [
        "Per answered list, what attribution adds in Redis (`scripts/bench_feedback.py --serve-cost`: "
        "script time from `INFO commandstats`, memory from `used_memory`, an experiment running):",
        "",
        "| k | attribution off | on: time, memory | on + implicit impressions: time, memory |",
        "|---|---|---|---|",
    ]
    for k in sorted({c.k for c in costs}):
        row = {c.mode: c for c in costs if c.k == k}
        cells = [f"{row[m].redis_us:.0f} µs, {row[m].redis_bytes:,.0f} B" for m in ("on", "implicit")]
        lines.append(
            f"| {k} | {row['off'].redis_us:.0f} µs, {row['off'].redis_bytes:,.0f} B | {' | '.join(cells)} |"
        )
    return "\n".join(lines) + "\n"
