"""Serving benchmark, as a storefront feels it; writes docs/benchmarks.md.

    python scripts/bench.py [--artifacts DIR] [--large N] [--seconds 10] [--out docs/benchmarks.md]
        [--idle-poll]

Method (the same for each artifact: DIR, default the Amazon Beauty model of `make eval`, and
a synthetic N-item artifact, default 1,000,000, built by models/bench_artifact.py if missing):
the API is one uvicorn worker pinned to core 0 with one BLAS thread (`taskset -c 0`,
OPENBLAS_NUM_THREADS=1); load generators and a private Redis run on core 1. t_hello: 1 / max throughput of
GET /healthz (wrk, 16 connections). t_score: the endpoint's scoring work in-process (history
+ recommend, 20-item sessions, k=10), this process pinned to core 0 with one BLAS thread,
median after 20 warm-up sessions. Max throughput of POST /v1/recommendations and GET
/v1/items/{id}/similar: wrk, 16 connections, random bodies and ids; the recommendations also
with a session_id in each body, which makes each answer write its attribution record. t_score,
t_hello and the recommendations' max throughput (without, then with session ids) are measured
in turn, five rounds (100 sessions, then each wrk run for a fifth of --seconds): each row is
the median of the rounds, throughput / bound (and with / without session ids) the median of
each round's own ratio (the machine's speed drifts within minutes, so a ratio
of numbers taken minutes apart measures the drift). Latency at half of max: an open-loop
generator with Poisson arrivals (tools/load.py: one stream of arrivals, each request sent at
its time over any idle keep-alive connection, a new one opened when none is idle, so no
request waits on the client behind another's answer; it spins the last 2 ms to each send
time, as timers wake up to 1 ms late), latency from each request's scheduled time (no
coordinated omission), three runs of --seconds in a row: the row is the run of median p99,
the next row each run's p99 (one run's p99 swings with the machine's slow phases, which a
fixed rate counts in full); the same at 5% of max shows the floor under the queueing (a
core idle between requests answers slower: on these VMs the in-process t_score rises ~1.7x
when requests are 5-50 ms apart), and the server's own request histogram (GET /metrics) how
long the app took, without the socket queueing: the share within 2.5 / 5 / 10 ms, and its
mean at max, at half and at 5% of max (rate x the mean at half of max is the share of the
time the server was busy, which the queueing follows; half of max by wrk's throughput is
more than half busy when requests that arrive apart take longer), and /proc/stat the CPU
time the hypervisor stole from the server's core and from the load core during those runs
(a stolen load core sends and reads late, which the open-loop latencies count).
`--idle-poll` holds /dev/cpu_dma_latency at 0 for the run (idle cores poll instead of
halting: a machine setting, as tuned's latency-performance profile).
Catalog upsert visibility: PUT on one worker, polled on another. The large artifact's last row:
its t_score over the first artifact's, the two measured session by session in turn in one
process (five rounds of 100 sessions each; the t_score rows above are minutes apart).
Start-up: process start to /readyz 200 with the artifact's files dropped from the page cache
(posix_fadvise DONTNEED). Memory: PSS (shared pages split between the processes that map
them) after the same traffic: one uvicorn worker; two workers of `python -m app.serve
--workers 2` (forked after the import) and of `uvicorn --workers 2` (spawned), alone and
with their supervisor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.scoring import artifact, history  # noqa: E402
from app.scoring.recommender import Recommender  # noqa: E402
from tools.load import Request, Stats, run_load  # noqa: E402
from tools.markdown import replace_section  # noqa: E402
from tools.server import AUTH, api_env, children, free_port, private_redis, spawn_api, stop, wait_ready  # noqa: E402

# Redis: a private server pinned to the load core (SHOPREC_BENCH_REDIS_URL: yours instead), so
# the API's core does only the API's work (each list answered for a session_id writes its
# attribution record).
REDIS_URL = os.environ.get("SHOPREC_BENCH_REDIS_URL", "")
SERVER_CPU, LOAD_CPU = "0", 1
SINGLE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class Run:
    label: str
    n_items: int
    rows: list[tuple[str, str]] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)


def pick_artifacts(given: Path | None) -> Path:
    if given:
        return given
    for candidate in (
        ROOT / "build/evaluation/amazon-beauty/attributes",
        ROOT / "build/evaluation/online-retail/attributes",
        ROOT / "build/artifacts",
    ):
        if (candidate / "current").exists():
            return candidate
    out = ROOT / "build/artifacts"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/train.py"), "--synthetic", "--out", str(out)], check=True
    )
    return out


def large_artifacts(n_items: int) -> Path:
    """The synthetic artifact of ``n_items`` items, built when missing or made by an older
    generator (models.bench_artifact.GENERATION)."""
    from models.bench_artifact import GENERATION, build

    out = ROOT / f"build/bench-{n_items}"
    manifest = out / "current" / "manifest.json"
    made = json.loads(manifest.read_text()).get("source", {}).get("generation") if manifest.exists() else None
    if made != GENERATION:
        if out.exists():
            shutil.rmtree(out)
        print(f"building a synthetic {n_items:,}-item artifact in {out}", flush=True)
        build(out, n_items=n_items)
    return out


def start_pinned(
    artifacts_dir: Path, port: int, *, prefix: str, workers: int = 1, launcher: str = "uvicorn"
) -> subprocess.Popen[str]:
    """launcher "uvicorn" (its --workers spawns new interpreters) or "app.serve" (forks them)."""
    env = {**api_env(artifacts_dir, redis_url=REDIS_URL, prefix=prefix), **SINGLE_THREAD}
    if launcher == "uvicorn":
        command = ["uvicorn", "app.main:create_app", "--factory", "--port", "{port}", "--no-access-log",
                   "--log-level", "warning", "--workers", str(workers)]  # fmt: skip
    else:
        command = ["app.serve", "--port", "{port}", "--no-access-log", "--log-level", "warning",
                   "--workers", str(workers)]  # fmt: skip
    server = spawn_api(env, port, command=command, cpus=SERVER_CPU if workers == 1 else None)
    wait_ready(f"http://127.0.0.1:{port}", process=server, seconds=120)
    return server


# -- load ------------------------------------------------------------------------------
def wrk(
    url: str, *, seconds: float, script: str | None = None, connections: int = 16
) -> tuple[float, dict[str, float]]:
    """(requests/s, latency percentiles in ms) of wrk on the load core."""
    command = [
        "taskset",
        "-c",
        str(LOAD_CPU),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
    ]
    if script:
        command += ["-s", script]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk got {errors.group(1)} error answers from {url}:\n{out}")
    percentiles = {}
    for q, value, unit in re.findall(r"\s+(50|90|99)\.000%\s+([\d.]+)(us|ms|s)", out):
        percentiles[f"p{q}"] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    return rate, percentiles


def lua_script(requests: Sequence[Request], folder: Path, name: str) -> str:
    """A wrk script cycling through pre-drawn requests (method, path, JSON body)."""

    def quote(text: str) -> str:
        return json.dumps(text)

    lines = ["local requests = {"]
    for method, path, body in requests:
        lines.append(f"  {{{quote(method)}, {quote(path)}, {quote(body.decode() if body else '')}}},")
    lines += [
        "}",
        "local n = 0",
        'wrk.headers["Content-Type"] = "application/json"',
        f'wrk.headers["X-API-Key"] = {quote(AUTH["x-api-key"])}',
        "request = function()",
        "  n = n % #requests + 1",
        "  local r = requests[n]",
        "  if r[3] == '' then return wrk.format(r[1], r[2]) end",
        "  return wrk.format(r[1], r[2], nil, r[3])",
        "end",
    ]
    script = folder / f"{name}.lua"
    script.write_text("\n".join(lines))
    return str(script)


def open_loop(url: str, make: Callable[[random.Random], Request], rate: float, seconds: float) -> Stats:
    """Poisson arrivals at ``rate``/s from this process, moved to the load core, each sent at
    its time over a pool of connections (up to 32 opened in advance, more when that many are
    in flight; tools/load.py closes one idle for 4 s before uvicorn's 5 s keep-alive timeout
    would, which would fail a request no shopper would see)."""
    os.sched_setaffinity(0, {LOAD_CPU})
    connections = int(max(1, min(32, rate / 4)))
    return asyncio.run(
        run_load(url, make, seconds=seconds, connections=connections, rate=rate, poisson=True, headers=AUTH)
    )


def median_run(runs: Sequence[Stats]) -> Stats:
    """The run of median p99 (the upper one of an even number): a p99 at a fixed rate counts a
    slow phase of the machine in full, so one run's swings; the median run's, less."""
    return sorted(runs, key=lambda r: r.percentile(99))[len(runs) // 2]


def handled_within(url: str) -> dict[str, float]:
    """The server's own request histogram (shoprec_request_seconds) of POST
    /v1/recommendations: cumulative counts by upper bound in seconds (its time from the ASGI
    call to the answer; no socket queueing), and under "sum" the seconds of them all."""
    text = httpx.get(url + "/metrics", headers=AUTH, timeout=10).text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        ours = 'method="POST"' in line and "recommendations" in line
        if line.startswith("shoprec_request_seconds_bucket") and ours:
            bound = line.split('le="')[1].split('"')[0]
            counts[bound] = counts.get(bound, 0.0) + float(line.split()[-1])
        elif line.startswith("shoprec_request_seconds_sum") and ours:
            counts["sum"] = counts.get("sum", 0.0) + float(line.split()[-1])
    return counts


def mean_handled(before: dict[str, float], after: dict[str, float]) -> float:
    """Mean seconds the app took per request between two :func:`handled_within` readings."""
    total = after.get("+Inf", 0.0) - before.get("+Inf", 0.0)
    return (after.get("sum", 0.0) - before.get("sum", 0.0)) / max(total, 1.0)


def gc_pauses(url: str) -> dict[str, float]:
    """The server's collector pauses (shoprec_gc_pause_seconds, all generations): cumulative
    counts by upper bound in seconds."""
    text = httpx.get(url + "/metrics", headers=AUTH, timeout=10).text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("shoprec_gc_pause_seconds_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            counts[bound] = counts.get(bound, 0.0) + float(line.split()[-1])
    return counts


def stolen_ms(stat: str | None = None) -> dict[str, float]:
    """Milliseconds each CPU has been kept off the processor by the hypervisor since boot
    ("steal", the 8th value of a cpuN line of /proc/stat, in clock ticks). A VM whose load
    core is stolen sends late and reads late: its open-loop latencies grow with no help from
    the server."""
    text = Path("/proc/stat").read_text() if stat is None else stat
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0].startswith("cpu") and fields[0] != "cpu" and len(fields) > 8:
            out[fields[0]] = int(fields[8]) * tick_ms
    return out


def stolen_during(before: dict[str, float], after: dict[str, float]) -> str:
    server, load = f"cpu{SERVER_CPU}", f"cpu{LOAD_CPU}"
    return " / ".join(f"{after.get(c, 0.0) - before.get(c, 0.0):.0f} ms" for c in (server, load))


def shares(before: dict[str, float], after: dict[str, float], bounds: Sequence[str]) -> str:
    total = after.get("+Inf", 0.0) - before.get("+Inf", 0.0)
    return " / ".join(f"{(after.get(b, 0.0) - before.get(b, 0.0)) / max(total, 1.0):.0%}" for b in bounds)


def long_pauses(before: dict[str, float], after: dict[str, float]) -> str:
    def delta(bound: str) -> int:
        return int(after.get(bound, 0.0) - before.get(bound, 0.0))

    return f"{delta('+Inf')} / {delta('+Inf') - delta('0.005')}"


def sample_ids(loaded: artifact.Artifact, n: int, rng: random.Random) -> list[str]:
    ids = loaded.arrays["item_ids"]
    return [bytes(ids[i]).decode() for i in rng.sample(range(len(ids)), min(n, len(ids)))]


def sessions(item_ids: list[str], n: int, rng: random.Random) -> list[list[str]]:
    return [rng.sample(item_ids, 20) for _ in range(n)]


@contextlib.contextmanager
def on_server_core() -> Iterator[None]:
    """This process on the server's core with one BLAS thread, as the server runs."""
    from threadpoolctl import threadpool_limits

    os.sched_setaffinity(0, {int(SERVER_CPU)})
    try:
        with threadpool_limits(1):
            yield
    finally:
        os.sched_setaffinity(0, {0, 1})


def score_once(recommender: Recommender, items: list[str]) -> float:
    """Seconds of the endpoint's scoring work for one session: history, then recommend."""
    t0 = time.perf_counter()
    built = history.build(recommender, session=items)
    recommender.recommend(built.weights, k=10, exclude=built.owned)
    return time.perf_counter() - t0


def time_scoring(recommender: Recommender, drawn: list[list[str]]) -> float:
    """Median seconds of the endpoint's scoring work, on the server's core, one BLAS thread."""
    with on_server_core():
        times = [score_once(recommender, items) for items in drawn]
    return statistics.median(times[20:])


ROUNDS = 5  # t_score, t_hello and max throughput, measured in turn
OPEN_RUNS = 3  # open-loop runs at half of max: one run's p99 swings with the machine's phases


def t_score_ratio(small: Path, large: Path, rounds: int = ROUNDS, per_round: int = 100) -> list[float]:
    """Each round's median t_score of the ``large`` artifact over the ``small`` one's, the two
    measured session by session in turn in one process (the machine's speed drifts within
    minutes, and the two tables' t_score rows are taken minutes apart); sorted."""
    rng = random.Random(11)
    pairs = []
    for folder in (small, large):
        loaded = artifact.load(folder)
        artifact.prefault(loaded)
        recommender = Recommender(loaded)
        pairs.append((recommender, sessions(sample_ids(loaded, 20_000, rng), rounds * per_round + 20, rng)))
    times: list[list[float]] = [[], []]
    with on_server_core():
        for j in range(rounds * per_round + 20):
            for side in (0, 1) if j % 2 else (1, 0):
                recommender, drawn = pairs[side]
                times[side].append(score_once(recommender, drawn[j]))
    ratios = []
    for i in range(rounds):
        part = slice(20 + i * per_round, 20 + (i + 1) * per_round)
        ratios.append(statistics.median(times[1][part]) / statistics.median(times[0][part]))
    return sorted(ratios)


def measure(artifacts_dir: Path, label: str, args: argparse.Namespace, scratch: Path) -> Run:
    loaded = artifact.load(artifacts_dir)
    artifact.prefault(loaded)  # as the server does when it loads a version
    recommender = Recommender(loaded)
    rng = random.Random(7)
    item_ids = sample_ids(loaded, 20_000, rng)
    run = Run(label, recommender.n_items)
    drawn = sessions(item_ids, 100 * ROUNDS, rng)
    drawn_requests = sessions(item_ids, 2000, rng)
    recommend = [
        ("POST", "/v1/recommendations", json.dumps({"items": s, "k": 10}).encode()) for s in drawn_requests
    ]
    # The same sessions as a storefront's anonymous visitors send them: with a session_id,
    # so that each answer writes its attribution record to Redis.
    with_session = [
        (
            "POST",
            "/v1/recommendations",
            json.dumps({"items": s, "k": 10, "session_id": f"visitor-{n}"}).encode(),
        )
        for n, s in enumerate(drawn_requests)
    ]
    similar = [
        ("GET", f"/v1/items/{i}/similar?k=10", None) for i in rng.sample(item_ids, min(2000, len(item_ids)))
    ]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_pinned(artifacts_dir, port, prefix=f"shoprec-bench-{port}")
    try:
        wrk(url + "/healthz", seconds=2)  # warm-up
        script = lua_script(recommend, scratch, "recommend")
        session_script = lua_script(with_session, scratch, "recommend-session")
        wrk(url + "/v1/recommendations", seconds=3, script=script)
        wrk(url + "/v1/recommendations", seconds=1, script=session_script)
        # In turn, so that each ratio compares numbers of one moment: this machine's speed
        # drifts by up to 1.8x within minutes.
        rounds, handled_at_max, with_sessions = [], [], []
        for i in range(ROUNDS):
            t_score_i = time_scoring(recommender, drawn[100 * i : 100 * (i + 1)])
            hello_i, _ = wrk(url + "/healthz", seconds=args.seconds / ROUNDS)
            before_max = handled_within(url)  # the app's own time per request in the wrk run
            max_i, _ = wrk(url + "/v1/recommendations", seconds=args.seconds / ROUNDS, script=script)
            handled_at_max.append(mean_handled(before_max, handled_within(url)))
            rounds.append((t_score_i, 1.0 / hello_i, max_i))
            session_i, _ = wrk(
                url + "/v1/recommendations", seconds=args.seconds / ROUNDS, script=session_script
            )
            with_sessions.append((session_i, session_i / max_i))
        at_max = statistics.mean(handled_at_max)
        session_max = statistics.median(r[0] for r in with_sessions)
        session_ratios = sorted(r[1] for r in with_sessions)
        t_score, t_hello, rec_max = (statistics.median(r[j] for r in rounds) for j in range(3))
        ratios = sorted(m * (h + t) for t, h, m in rounds)
        before, gc_before, steal_before = handled_within(url), gc_pauses(url), stolen_ms()
        halves = [
            open_loop(url, lambda r: r.choice(recommend), rec_max / 2, args.seconds) for _ in range(OPEN_RUNS)
        ]
        half = median_run(halves)
        after_half, gc_after, steal_after = handled_within(url), gc_pauses(url), stolen_ms()
        # The floor under the queueing: at 5% of max the server is idle between most requests.
        low = open_loop(url, lambda r: r.choice(recommend), rec_max / 20, args.seconds)
        after_low = handled_within(url)
        sim_max, _ = wrk(url + "/", seconds=args.seconds, script=lua_script(similar, scratch, "similar"))
        sim_half = open_loop(url, lambda r: r.choice(similar), sim_max / 2, args.seconds)
    finally:
        stop(server)
    bound = 1.0 / (t_hello + t_score)
    half_mean = mean_handled(before, after_half)
    run.rows += [
        ("t_hello (1 / max throughput of GET /healthz, wrk)", ms(t_hello, 3)),
        ("t_score (in-process history + recommend, 20-item sessions, k=10, median)", ms(t_score, 3)),
        ("bound 1 / (t_hello + t_score)", f"{bound:.0f} req/s"),
        ("POST /v1/recommendations max throughput (wrk, 16 connections)", f"{rec_max:.0f} req/s"),
        (f"throughput / bound, median of {ROUNDS} rounds (lowest - highest)",
         f"{statistics.median(ratios):.2f} ({ratios[0]:.2f} - {ratios[-1]:.2f})"),
        ("the same requests with a session_id, as anonymous visitors send them (each answer's attribution "
         "record written to Redis behind it): max throughput; its ratio to the one above, median of the "
         f"{ROUNDS} rounds (lowest - highest)",
         f"{session_max:.0f} req/s; {statistics.median(session_ratios):.2f} "
         f"({session_ratios[0]:.2f} - {session_ratios[-1]:.2f})"),
        (f"POST /v1/recommendations at half of max ({rec_max / 2:.0f} req/s, Poisson), "
         f"the run of median p99 of {OPEN_RUNS}: p50 / p99 / max",
         percentiles(half, 50, 99, 100)),
        (f"the p99 of each of the {OPEN_RUNS} runs at half of max, in order",
         " / ".join(f"{h.percentile(99) * 1000:.2f}" for h in halves) + " ms"),
        (f"POST /v1/recommendations at 5% of max ({rec_max / 20:.0f} req/s, Poisson): p50 / p99",
         percentiles(low, 50, 99)),
        ("server-side: recommendations handled within 2.5 / 5 / 10 ms, in the runs at half of max",
         shares(before, after_half, ("0.0025", "0.005", "0.01"))),
        ("the same at 5% of max", shares(after_half, after_low, ("0.0025", "0.005", "0.01"))),
        ("server-side: mean time per recommendation at max (the rounds' wrk runs) / at half of max / "
         "at 5% of max; the server's busy share at half of max (its rate x mean)",
         f"{ms(at_max, 3)} / {ms(half_mean, 3)} / "
         f"{ms(mean_handled(after_half, after_low), 3)}; {rec_max / 2 * half_mean:.2f}"),
        ("server-side: collector pauses in the runs at half of max, all / of 5 ms or more",
         long_pauses(gc_before, gc_after)),
        ("CPU stolen by the hypervisor during the runs at half of max: server core / load core",
         stolen_during(steal_before, steal_after)),
        ("GET /v1/items/{id}/similar max throughput", f"{sim_max:.0f} req/s"),
        (f"GET /v1/items/{{id}}/similar at half of max ({sim_max / 2:.0f} req/s): p50 / p99",
         percentiles(sim_half, 50, 99)),
        ("requests not answered 2xx in the open-loop runs",
         str(sum(h.failed() for h in halves) + low.failed() + sim_half.failed())),
    ]  # fmt: skip
    run.latencies = {
        "recommend, half of max (open loop)": half.latencies,
        "similar, half of max": sim_half.latencies,
    }
    print(label, *run.rows, sep="\n", flush=True)
    return run


def ms(seconds: float, digits: int = 2) -> str:
    return f"{seconds * 1000:.{digits}f} ms"


def percentiles(stats: Stats, *qs: float) -> str:
    values = [max(stats.latencies) if q == 100 else stats.percentile(q) for q in qs]
    return " / ".join(f"{v * 1000:.2f}" for v in values) + " ms"


def upsert_visibility(artifacts_dir: Path, repeats: int = 50) -> tuple[float, float]:
    """(p50, p99) seconds from a PUT's 2xx on worker A to the new item's similar items on
    worker B (both on Redis, catalog changes announced over pub/sub)."""
    ports = [free_port(), free_port()]
    prefix = f"shoprec-bench-upsert-{ports[0]}"
    servers = [start_pinned(artifacts_dir, p, prefix=prefix) for p in ports]
    waits = []
    try:
        with httpx.Client(headers=AUTH, timeout=10) as http:
            for n in range(repeats):
                item = f"BENCH-NEW-{n}"
                body = {"title": f"Brand1 rose mug {n}", "category": "cat1", "brand": "Brand1", "price": 9.5}
                assert http.put(f"http://127.0.0.1:{ports[0]}/v1/items/{item}", json=body).status_code == 200
                done = time.perf_counter()
                while (
                    http.get(f"http://127.0.0.1:{ports[1]}/v1/items/{item}/similar?k=10").status_code != 200
                ):
                    if time.perf_counter() - done > 10:
                        raise RuntimeError(f"{item} not visible on the other worker after 10 s")
                waits.append(time.perf_counter() - done)
    finally:
        for server in servers:
            stop(server)
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    waits.sort()
    return waits[len(waits) // 2], waits[min(len(waits) - 1, int(0.99 * len(waits)))]


def drop_page_cache(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def cold_start(artifacts_dir: Path) -> float:
    """Seconds from process start to /readyz 200, the artifact's pages dropped first."""
    drop_page_cache(artifact.resolve(artifacts_dir))
    port = free_port()
    started = time.perf_counter()
    server = start_pinned(artifacts_dir, port, prefix=f"shoprec-bench-start-{port}")
    seconds = time.perf_counter() - started
    stop(server)
    return seconds


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def workers_pss(
    artifacts_dir: Path, workers: int, requests: Sequence[Request], launcher: str = "uvicorn"
) -> tuple[float, float]:
    """Total PSS (MB) of the worker processes after the same traffic, and of the whole process
    tree (with the supervisor; uvicorn's multiprocessing resource tracker left out)."""
    port = free_port()
    server = start_pinned(
        artifacts_dir, port, prefix=f"shoprec-bench-pss-{port}", workers=workers, launcher=launcher
    )
    try:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(run_load(url, lambda r: r.choice(requests), seconds=5, connections=8, headers=AUTH))
        tracker = lambda p: b"resource_tracker" in Path(f"/proc/{p}/cmdline").read_bytes()  # noqa: E731
        pids = [p for p in children(server.pid) if not tracker(p)]
        worker_pss = sum(pss_mb(p) for p in pids or [server.pid])
        return worker_pss, worker_pss + (pss_mb(server.pid) if pids else 0.0)
    finally:
        stop(server)


def scale_rows(artifacts_dir: Path) -> list[tuple[str, str]]:
    loaded = artifact.load(artifacts_dir)
    rng = random.Random(3)
    ids = sample_ids(loaded, 5000, rng)
    requests = [
        ("POST", "/v1/recommendations", json.dumps({"items": s, "k": 10}).encode())
        for s in sessions(ids, 500, rng)
    ]
    p50, p99 = upsert_visibility(artifacts_dir)
    start = cold_start(artifacts_dir)
    one, _ = workers_pss(artifacts_dir, 1, requests)
    spawned, spawned_tree = workers_pss(artifacts_dir, 2, requests)
    forked, forked_tree = workers_pss(artifacts_dir, 2, requests, launcher="app.serve")
    return [
        ("catalog upsert visible in `similar` on another worker, p50 / p99", f"{ms(p50)} / {ms(p99)}"),
        ("process start to /readyz 200, artifact not in the page cache", f"{start:.1f} s"),
        ("PSS of one worker", f"{one:,.0f} MB"),
        ("PSS of two workers, `python -m app.serve --workers 2` (forked); with its supervisor",
         f"{forked:,.0f} MB ({forked / one:.2f}x); {forked_tree:,.0f} MB ({forked_tree / one:.2f}x)"),
        ("PSS of two workers, `uvicorn --workers 2` (spawned); with its supervisor",
         f"{spawned:,.0f} MB ({spawned / one:.2f}x); {spawned_tree:,.0f} MB ({spawned_tree / one:.2f}x)"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument(
        "--large", type=int, default=1_000_000, help="items of the synthetic artifact; 0: skip"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks.md")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--idle-poll",
        action="store_true",
        help="hold /dev/cpu_dma_latency at 0 for the run (root): idle cores poll instead of "
        "halting, as tuned's latency-performance profile sets; a machine setting, not the service's",
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.idle_poll:
            stack.enter_context(idle_poll())
        if not REDIS_URL:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-redis-")))
            set_redis(stack.enter_context(private_redis(folder, cpus=str(LOAD_CPU))).url)
        runs = measure_all(args)
    write_report(args, runs)
    return 0


@contextlib.contextmanager
def idle_poll() -> Iterator[None]:
    """The kernel's PM QoS request for 0 us wake-up latency, held while open: the cpuidle
    governor then picks the polling idle state, not HLT (on these VMs a halted vCPU wakes
    slowly and comes back to cold caches)."""
    try:
        handle = open("/dev/cpu_dma_latency", "wb", buffering=0)  # noqa: SIM115 - held for the run
    except OSError as exc:
        raise SystemExit(f"--idle-poll: cannot open /dev/cpu_dma_latency ({exc}); it needs root") from exc
    try:
        handle.write(struct.pack("i", 0))
        yield
    finally:
        handle.close()


def set_redis(url: str) -> None:
    global REDIS_URL
    REDIS_URL = url


def measure_all(args: argparse.Namespace) -> list[Run]:
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        small = pick_artifacts(args.artifacts)
        runs.append(
            measure(
                small,
                str(small.relative_to(ROOT) if small.is_relative_to(ROOT) else small),
                args,
                Path(scratch),
            )
        )
        runs[-1].rows += scale_rows(small)
        if args.large:
            large = large_artifacts(args.large)
            runs.append(
                measure(
                    large,
                    f"synthetic {args.large:,}-item artifact (models/bench_artifact.py)",
                    args,
                    Path(scratch),
                )
            )
            runs[-1].rows += scale_rows(large)
            ratios = t_score_ratio(small, large)
            runs[-1].rows.append((
                f"t_score here / t_score of the first artifact, the two in turn in one process, "
                f"median of {ROUNDS} rounds (lowest - highest)",
                f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f} - {ratios[-1]:.2f})",
            ))  # fmt: skip
    return runs


def write_report(args: argparse.Namespace, runs: list[Run]) -> None:
    command = "python scripts/bench.py" + (f" --artifacts {args.artifacts}" if args.artifacts else "")
    command += f" --large {args.large}" if args.large != 1_000_000 else ""
    command += " --idle-poll" if args.idle_poll else ""
    lines = [
        "# Serving benchmarks",
        "",
        f"Command: `{command}` (`make bench`)  ",
        f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}  ",
        "",
        *__doc__.split("\n\n", 2)[2].strip().splitlines(),
        "",
    ]
    for run in runs:
        lines += [f"## {run.label} ({run.n_items:,} items)", "", "| measure | value |", "|---|---|"]
        lines += [f"| {a} | {b} |" for a, b in run.rows] + [""]
    lines += ["![Latency distributions](latency.png)", ""]
    text = "\n".join(lines)
    replace_section(args.out, "bench", text)  # the soak section (scripts/soak.py) stays
    plot_latencies(args.out.with_name("latency.png"), runs)
    print(text)


def plot_latencies(out: Path, runs: Sequence[Run]) -> dict[str, dict[str, float]]:
    """The open-loop latency distribution of every run, as measured (histogram + CDF)."""
    from models.plots import latency_distribution

    return latency_distribution(
        {f"{r.label}: {name}": values for r in runs for name, values in r.latencies.items()},
        out,
        title="Open-loop latency at half of max throughput",
    )


if __name__ == "__main__":
    sys.exit(main())
