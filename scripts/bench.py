"""Serving benchmark; writes docs/benchmarks.md.

    python scripts/bench.py [--artifacts DIR] [--out docs/benchmarks.md] [--seconds 8]

Measures in one run, against a real uvicorn process (one worker) and the real Redis:
t_hello (GET /healthz at max throughput: the framework's cost per request), t_score (the
endpoint's scoring call in-process: resolve ids + recommend), max throughput of
POST /v1/recommendations with 20-item histories and k=10, p99 latency at half that
throughput, feedback batch ingestion, and failed requests while the model is reloaded and
rolled back under load. Without --artifacts it uses the Online Retail model of `make eval`
when present, else trains the synthetic shop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.scoring import artifact, history  # noqa: E402
from app.scoring.history import ExcludeHistory  # noqa: E402
from app.scoring.recommender import Recommender  # noqa: E402
from tools.load import Request, Stats, run_load  # noqa: E402
from tools.markdown import replace_section  # noqa: E402
from tools.server import ADMIN_KEY, AUTH, start_server, stop  # noqa: E402

REDIS_URL = os.environ.get("SHOPREC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def pick_artifacts(given: Path | None) -> Path:
    if given:
        return given
    for candidate in (ROOT / "build/evaluation/online-retail", ROOT / "build/artifacts"):
        if (candidate / "current").exists():
            return candidate
    out = ROOT / "build/artifacts"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/train.py"), "--synthetic", "--out", str(out)], check=True
    )
    return out


def two_versions(artifacts_dir: Path) -> Path:
    """A scratch artifacts dir holding the serving version twice (v1, v2), current = v2,
    so reload and rollback have somewhere to go."""
    scratch = ROOT / "build/bench-artifacts"
    shutil.rmtree(scratch, ignore_errors=True)
    source = artifact.resolve(artifacts_dir)
    for n, name in enumerate(("v1", "v2")):
        shutil.copytree(source, scratch / name)
        manifest = json.loads((scratch / name / "manifest.json").read_text())
        manifest.update(model_version=name, created_at=f"2026-01-0{n + 1}T00:00:00")
        (scratch / name / "manifest.json").write_text(json.dumps(manifest))
    artifact.publish(scratch, "v1")
    artifact.publish(scratch, "v2")
    return scratch


def time_scoring(recommender: Recommender, sessions: list[list[str]]) -> float:
    """Median seconds of the endpoint's scoring call: the history of 20 session items (as
    purchases, the default) + recommend(k=10) excluding them (the default policy)."""
    times = []
    for items in sessions:
        t0 = time.perf_counter()
        built = history.build(recommender, session=items)
        recommender.recommend(built.weights, k=10, exclude=built.excluded(ExcludeHistory.purchased))
        times.append(time.perf_counter() - t0)
    return statistics.median(times[10:])


def traffic(item_ids: list[str]) -> dict[str, Callable[[random.Random], Request]]:
    counter = iter(range(10**9))

    def hello(r: random.Random) -> Request:
        return "GET", "/healthz", None

    def recommend(r: random.Random) -> Request:
        body = {"items": r.sample(item_ids, 20), "k": 10}
        return "POST", "/v1/recommendations", json.dumps(body).encode()

    def batch(r: random.Random) -> Request:
        n = next(counter)
        events = [
            {"user_id": f"bench-{r.randrange(5000)}", "item_id": r.choice(item_ids), "event": "view",
             "event_id": f"b{n}-{i}"}
            for i in range(1000)
        ]  # fmt: skip
        return "POST", "/v1/feedback/batch", json.dumps({"events": events}).encode()

    return {"hello": hello, "recommend": recommend, "batch": batch}


def reload_under_load(
    url: str, make: Callable[[random.Random], Request], seconds: float
) -> tuple[Stats, list[str]]:
    """Recommendation load while another thread reloads and rolls back the model."""
    actions: list[str] = []

    def admin() -> None:
        headers = {"x-api-key": ADMIN_KEY}
        for path in ("/v1/admin/rollback", "/v1/admin/reload", "/v1/admin/rollback"):
            time.sleep(seconds / 4)
            answer = httpx.post(f"{url}{path}", headers=headers, timeout=30).json()
            actions.append(f"{path} -> {answer}")
            if path.endswith("rollback"):  # current back to v2 on disk: reload and rollback again
                artifact.publish(ROOT / "build/bench-artifacts", "v2")

    thread = threading.Thread(target=admin)
    thread.start()
    stats = asyncio.run(run_load(url, make, seconds=seconds, connections=8))
    thread.join()
    return stats, actions


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
    source_dir = pick_artifacts(args.artifacts)
    artifacts_dir = two_versions(source_dir)
    loaded = artifact.load(artifacts_dir)
    item_ids = [i["item_id"] for i in loaded.items]
    rng = random.Random(7)
    t_score = time_scoring(Recommender(loaded), [rng.sample(item_ids, 20) for _ in range(500)])
    print(f"t_score {t_score * 1000:.3f} ms", flush=True)

    url = f"http://127.0.0.1:{args.port}"
    make = traffic(item_ids)

    def load(name: str, *, rate: float | None = None, connections: int | None = None) -> Stats:
        stats = asyncio.run(
            run_load(url, make[name], seconds=args.seconds, connections=connections or args.connections,
                     rate=rate, headers=AUTH)
        )  # fmt: skip
        print(name, f"rate {rate:.0f}/s" if rate else "max", stats.summary(), flush=True)
        return stats

    server = start_server(artifacts_dir, args.port, redis_url=REDIS_URL, prefix="shoprec-bench")
    try:
        load("recommend", connections=4)  # warm-up
        hello = load("hello")
        rec = load("recommend")
        half = load("recommend", rate=rec.throughput / 2)
        batch = load("batch", connections=4)
        reloading, actions = reload_under_load(url, make["recommend"], args.seconds * 2)
        print("reload under load", reloading.summary(), *actions, sep="\n", flush=True)
    finally:
        stop(server)
    write_report(args, source_dir, loaded, t_score=t_score, hello=hello, rec=rec, half=half, batch=batch,
                 reloading=reloading, actions=actions)  # fmt: skip
    return 0


def write_report(args: argparse.Namespace, source_dir: Path, loaded: artifact.Artifact, *, t_score: float,
                 hello: Stats, rec: Stats, half: Stats, batch: Stats, reloading: Stats,
                 actions: list[str]) -> None:  # fmt: skip
    t_hello = 1.0 / hello.throughput
    bound = 1.0 / (t_hello + t_score)
    rows = [
        ("t_hello (1 / max throughput of GET /healthz)", f"{t_hello * 1000:.3f} ms"),
        ("t_score (in-process history + recommend, 20 items, k=10, median)", f"{t_score * 1000:.3f} ms"),
        ("bound 1 / (t_hello + t_score)", f"{bound:.0f} req/s"),
        ("POST /v1/recommendations max throughput", f"{rec.throughput:.0f} req/s"),
        ("throughput / bound (target ≥ 0.80)", f"{rec.throughput / bound:.2f}"),
        (
            f"p50 / p99 at half of max ({rec.throughput / 2:.0f} req/s offered, open loop)",
            f"{half.percentile(50) * 1000:.2f} / {half.percentile(99) * 1000:.2f} ms (target p99 ≤ 15 ms)",
        ),
        (
            "feedback batch ingestion (1,000-event batches over HTTP into Redis)",
            f"{batch.throughput * 1000:,.0f} events/s (target ≥ 10,000)",
        ),
        (
            "reload + rollback ×2 under recommendation load",
            f"{len(reloading.latencies):,} requests, {reloading.failed()} failed, statuses "
            f"{dict(reloading.statuses)}",
        ),
        ("requests not answered 2xx (or transport errors) in the other runs",
         str(sum(s.failed() for s in (hello, rec, half, batch)))),
    ]  # fmt: skip
    counts = loaded.manifest.counts.model_dump()
    where = source_dir.relative_to(ROOT) if source_dir.is_relative_to(ROOT) else source_dir
    command = "python scripts/bench.py" + (f" --artifacts {args.artifacts}" if args.artifacts else "")
    text = "\n".join(
        [
            "# Serving benchmarks",
            "",
            f"Command: `{command}` (`make bench`)  ",
            f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}  ",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            "server and load generator share the machine  ",
            f"Model: `{where}` ({counts['items']:,} items, {counts['users']:,} users)  ",
            f"Server: one uvicorn worker; load: {args.connections} keep-alive connections, "
            f"{args.seconds:g} s per run, client `scripts/load.py`",
            "",
            "| measure | value |",
            "|---|---|",
            *[f"| {a} | {b} |" for a, b in rows],
            "",
            "![Latency of POST /v1/recommendations: histogram and CDF](latency.png)",
            "",
            "Admin actions during the reload run:",
            "",
            *[f"- `{a}`" for a in actions],
            "",
        ]
    )
    replace_section(args.out, "bench", text)  # the soak section (scripts/soak.py) stays
    plot_latencies(args.out.with_name("latency.png"), rec=rec, half=half)
    print(text)


def plot_latencies(out: Path, *, rec: Stats, half: Stats) -> dict[str, dict[str, float]]:
    """The latency distribution of the two recommendation runs, as measured (histogram + CDF)."""
    from models.plots import latency_distribution

    runs = {
        f"half of max ({half.throughput:.0f} req/s, open loop)": half.latencies,
        f"max throughput ({rec.throughput:.0f} req/s, closed loop)": rec.latencies,
    }
    return latency_distribution(runs, out, title="POST /v1/recommendations, 20-item histories, k=10")


if __name__ == "__main__":
    sys.exit(main())
