"""Serving benchmark; writes docs/benchmarks.md.

    python scripts/bench.py [--artifacts DIR] [--out docs/benchmarks.md] [--seconds 8]

Measures in one run, against a real uvicorn process (one worker) and the real Redis:
t_hello (GET /healthz at max throughput: the framework's cost per request), t_score (the
same scoring call in-process), max throughput of POST /v1/recommendations with 20-item
histories and k=10, p99 latency at half that throughput, and feedback batch ingestion.
Without --artifacts it uses the Online Retail model of `make eval` when present, else trains
the synthetic shop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.scoring import artifact  # noqa: E402
from app.scoring.recommender import Recommender  # noqa: E402
from scripts.load import run_load  # noqa: E402

REDIS_URL = os.environ.get("SHOPREC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def pick_artifacts(given: Path | None) -> Path:
    if given:
        return given
    for candidate in (ROOT / "build/evaluation/online-retail", ROOT / "build/artifacts"):
        if (candidate / "current").exists():
            return candidate
    out = ROOT / "build/artifacts"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/train.py"), "--synthetic", "--out", str(out)],
        check=True,
    )
    return out


def time_scoring(recommender: Recommender, histories: list[list[str]]) -> float:
    """Median seconds of one recommend() call on a 20-item history, k=10."""
    times = []
    for items in histories:
        history, _ = recommender.resolve((i, 4.0) for i in items)
        t0 = time.perf_counter()
        recommender.recommend(history, k=10)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[10:])


def start_server(artifacts_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SHOPREC_ARTIFACTS_DIR": str(artifacts_dir),
        "SHOPREC_REDIS_URL": REDIS_URL,
        "SHOPREC_REDIS_PREFIX": "shoprec-bench",
        "SHOPREC_LOG_REQUESTS": "false",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    import httpx

    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("server did not become ready")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks.md")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=8931)
    args = parser.parse_args(argv)
    artifacts_dir = pick_artifacts(args.artifacts)
    loaded = artifact.load(artifacts_dir)
    recommender = Recommender(loaded)
    item_ids = [i["item_id"] for i in loaded.items]
    rng = random.Random(7)
    histories = [rng.sample(item_ids, 20) for _ in range(300)]
    t_score = time_scoring(recommender, histories)
    print(f"t_score {t_score * 1000:.3f} ms", flush=True)

    url = f"http://127.0.0.1:{args.port}"
    server = start_server(artifacts_dir, args.port)
    try:

        def hello(r: random.Random):
            return "GET", "/healthz", None

        def recommend(r: random.Random):
            return (
                "POST",
                "/v1/recommendations",
                json.dumps({"items": r.sample(item_ids, 20), "k": 10}).encode(),
            )

        batch_counter = iter(range(10**9))

        def batch(r: random.Random):
            n = next(batch_counter)
            events = [
                {
                    "user_id": f"bench-{r.randrange(5000)}",
                    "item_id": r.choice(item_ids),
                    "event": "view",
                    "event_id": f"b{n}-{i}",
                }
                for i in range(1000)
            ]
            return "POST", "/v1/feedback/batch", json.dumps({"events": events}).encode()

        load = lambda make, **kw: asyncio.run(  # noqa: E731
            run_load(
                url,
                make,
                seconds=args.seconds,
                connections=kw.pop("connections", args.connections),
                **kw,
            )
        )
        load(recommend, connections=4)  # warm-up
        hello_stats = load(hello)
        print("hello", hello_stats.summary(), flush=True)
        rec_stats = load(recommend)
        print("recommend max", rec_stats.summary(), flush=True)
        half = rec_stats.throughput / 2
        half_stats = load(recommend, rate=half)
        print(f"recommend at {half:.0f}/s", half_stats.summary(), flush=True)
        batch_stats = load(batch, connections=4)
        events_per_s = batch_stats.throughput * 1000
        print(f"feedback batch {events_per_s:.0f} events/s", batch_stats.summary(), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)

    t_hello = 1.0 / hello_stats.throughput
    bound = 1.0 / (t_hello + t_score)
    ratio = rec_stats.throughput / bound
    rows = [
        ("t_hello (1 / max throughput of GET /healthz)", f"{t_hello * 1000:.3f} ms"),
        (
            "t_score (in-process recommend(), 20-item history, k=10, median)",
            f"{t_score * 1000:.3f} ms",
        ),
        ("bound 1 / (t_hello + t_score)", f"{bound:.0f} req/s"),
        ("POST /v1/recommendations max throughput", f"{rec_stats.throughput:.0f} req/s"),
        ("throughput / bound (target ≥ 0.80)", f"{ratio:.2f}"),
        (
            f"p50 / p99 at half of max ({half:.0f} req/s, open loop)",
            f"{half_stats.percentile(50) * 1000:.2f} / {half_stats.percentile(99) * 1000:.2f} ms"
            " (target p99 ≤ 15 ms)",
        ),
        (
            "feedback batch ingestion (1,000-event batches over HTTP into Redis)",
            f"{events_per_s:,.0f} events/s (target ≥ 10,000)",
        ),
        (
            "failed requests (5xx or transport errors) over all runs",
            str(sum(s.failed() for s in (hello_stats, rec_stats, half_stats, batch_stats))),
        ),
    ]
    counts = loaded.manifest["counts"]
    command = "python scripts/bench.py" + (f" --artifacts {args.artifacts}" if args.artifacts else "")
    where = artifacts_dir.relative_to(ROOT) if artifacts_dir.is_relative_to(ROOT) else artifacts_dir
    text = "\n".join(
        [
            "# Serving benchmarks",
            "",
            f"Command: `{command}` (`make bench`)  ",
            f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}  ",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}; server and load generator share the machine  ",
            f"Model: {loaded.version} from `{where}` "
            f"({counts['items']:,} items, {counts['users']:,} users)  ",
            f"Server: one uvicorn worker; load: {args.connections} keep-alive connections, "
            f"{args.seconds:g} s per run, client in scripts/load.py",
            "",
            "| measure | value |",
            "|---|---|",
            *[f"| {a} | {b} |" for a, b in rows],
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
