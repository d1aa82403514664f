"""Soak: mixed traffic at half of max throughput for a long time, watching memory.

    python scripts/soak.py [--artifacts DIR] [--minutes 10] [--out docs/benchmarks.md]

Starts its own Redis (a private redis-server, nothing else in it) and one uvicorn worker
with small caps (20 live events per user, live lists expire after 120 s idle, event ids
remembered 60 s), measures max throughput of the mixed traffic of scripts/load.py (80%
recommendations, 15% feedback, 5% similar items) for 15 s, then offers half of it in
30-second windows. After each window it samples the server's RSS, Redis' used_memory and
what is in Redis (idempotency keys, live lists and their longest length, stream entries).
Writes the table and the verdicts (errors, RSS growth after warm-up, Redis bounded) into
the "soak" section of --out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.scoring import artifact  # noqa: E402
from app.store.keys import Keys  # noqa: E402
from tools.load import Request, Stats, mixed_traffic, run_load  # noqa: E402
from tools.markdown import replace_section  # noqa: E402
from tools.server import AUTH, free_port, private_redis, start_server, stop  # noqa: E402

PREFIX = "shoprec-soak"
CAPS = {"recent_events": 20, "recent_ttl_s": 120, "idempotency_ttl_s": 60}
MIX = {"recommend": 80.0, "feedback": 15.0, "similar": 5.0}
WARM_UP_WINDOWS = 2  # the first minute


@dataclass
class Sample:
    minute: float
    stats: Stats
    rss_mb: float
    redis_mb: float
    seen_keys: int
    recent_keys: int
    longest_recent: int
    stream_entries: int


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def redis_sample(client: redis.Redis) -> tuple[float, int, int, int, int]:
    """(used_memory MB, idempotency keys, live lists, longest live list, stream entries)."""
    seen = recent = longest = 0
    for key in client.scan_iter(match=f"{PREFIX}:*", count=5000):
        if ":seen:" in key:
            seen += 1
        elif ":recent:" in key:
            recent += 1
            longest = max(longest, int(client.llen(key)))
    entries = sum(int(client.xlen(stream)) for stream in Keys(PREFIX).all_streams())
    used = int(client.info("memory")["used_memory"]) / 2**20
    return used, seen, recent, longest, entries


def soak(artifacts_dir: Path, minutes: float, connections: int) -> tuple[float, list[Sample]]:
    loaded = artifact.load(artifacts_dir)
    # 1,000 shoppers (700 known, 300 new) so live lists fill up to their cap.
    users = [*loaded.users[:700], *(f"soak-new-{n}" for n in range(300))]
    make = mixed_traffic([i["item_id"] for i in loaded.items], users, MIX)
    with tempfile.TemporaryDirectory(prefix="soak-redis-") as folder, private_redis(Path(folder)) as server:
        port = free_port()
        api = start_server(artifacts_dir, port, redis_url=server.url, prefix=PREFIX, **CAPS)
        try:
            return windows(f"http://127.0.0.1:{port}", api.pid, server.client(), make, minutes, connections)
        finally:
            stop(api)


def windows(
    url: str,
    pid: int,
    client: redis.Redis,
    make: Callable[[random.Random], Request],
    minutes: float,
    connections: int,
) -> tuple[float, list[Sample]]:
    """Max throughput for 15 s, then half of it in 30 s windows, sampling after each."""
    peak = asyncio.run(run_load(url, make, seconds=15, connections=connections, headers=AUTH))
    print("max", peak.summary(), flush=True)
    rate = peak.throughput / 2
    started = time.perf_counter()
    samples: list[Sample] = []
    while time.perf_counter() - started < minutes * 60:
        stats = asyncio.run(
            run_load(url, make, seconds=30, connections=connections, rate=rate, headers=AUTH,
                     seed=len(samples) + 2)
        )  # fmt: skip
        sample = Sample((time.perf_counter() - started) / 60, stats, rss_mb(pid), *redis_sample(client))
        samples.append(sample)
        print(f"{sample.minute:5.1f} min  rss {sample.rss_mb:.1f} MB  redis {sample.redis_mb:.1f} MB  "
              f"seen {sample.seen_keys}  live {sample.recent_keys} (longest {sample.longest_recent})  "
              f"stream {sample.stream_entries}  {stats.summary()}", flush=True)  # fmt: skip
    return peak.throughput, samples


def report(args: argparse.Namespace, peak: float, samples: list[Sample]) -> str:
    warm, last = samples[WARM_UP_WINDOWS - 1], samples[-1]
    growth = (last.rss_mb - warm.rss_mb) / warm.rss_mb
    requests = sum(len(s.stats.latencies) for s in samples)
    failed = sum(s.stats.failed() for s in samples)
    feedback_per_s = last.stream_entries / (last.minute * 60)
    rows = [
        f"| {s.minute:.1f} | {s.stats.throughput:.0f} | {s.stats.percentile(50) * 1000:.1f} / "
        f"{s.stats.percentile(99) * 1000:.1f} | {s.stats.failed()} | {s.rss_mb:.1f} | {s.redis_mb:.1f} | "
        f"{s.seen_keys:,} | {s.recent_keys:,} ({s.longest_recent}) | {s.stream_entries:,} |"
        for s in samples
    ]
    command = f"python scripts/soak.py --minutes {args.minutes:g}" + (
        f" --artifacts {args.artifacts}" if args.artifacts != ROOT / "build/artifacts" else ""
    )
    return "\n".join(
        [
            "## Soak",
            "",
            f"Command: `{command}` (`make soak`)  ",
            f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}  ",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            "server, its own Redis and the load generator share the machine  ",
            f"Traffic: {', '.join(f'{v:g}% {k}' for k, v in MIX.items())}; max {peak:.0f} req/s, offered "
            f"{peak / 2:.0f} req/s (half) for {last.minute:.1f} min over {args.connections} connections  ",
            f"Caps: {', '.join(f'{k}={v}' for k, v in CAPS.items())}",
            "",
            f"- Requests: {requests:,}; not answered 2xx: **{failed}**.",
            f"- Server RSS after the {WARM_UP_WINDOWS * 30} s warm-up {warm.rss_mb:.1f} MB, at the end "
            f"{last.rss_mb:.1f} MB: growth **{growth:+.1%}** (target < 10%).",
            f"- Redis: idempotency keys level off at about {feedback_per_s:.0f} events/s × 60 s "
            f"({last.seen_keys:,} at the end), live lists never exceed the cap of "
            f"{CAPS['recent_events']} (longest {max(s.longest_recent for s in samples)}), idle lists "
            f"expire after 120 s. The event streams grow by design ({last.stream_entries:,} entries): "
            "they are the record for the next retraining, which archives and trims them "
            "(scripts/retrain.py); used_memory grows with them, "
            f"{last.redis_mb:.1f} MB at the end.",
            "",
            "| minute | req/s | p50 / p99 ms | not 2xx | server RSS MB | Redis MB | idempotency keys "
            "| live lists (longest) | stream entries |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=ROOT / "build/artifacts")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks.md")
    args = parser.parse_args()
    if args.minutes * 2 < WARM_UP_WINDOWS:
        parser.error(f"--minutes must be at least {WARM_UP_WINDOWS / 2:g}")
    peak, samples = soak(args.artifacts, args.minutes, args.connections)
    text = report(args, peak, samples)
    replace_section(args.out, "soak", text)
    print(text)
    return 1 if sum(s.stats.failed() for s in samples) else 0


if __name__ == "__main__":
    sys.exit(main())
