"""A load generator for shoprec over plain HTTP/1.1 keep-alive connections (the library of
scripts/load.py, scripts/bench.py and scripts/soak.py).

    python scripts/load.py --url http://127.0.0.1:8000 [--rate 200 | max] [--seconds 30]
        [--connections 32] [--mix recommend=80,feedback=15,similar=5] [--api-key KEY]

Mixed traffic: user and session recommendations, single feedback events, similar items,
drawn from the serving model's ids (GET /v1/model is not enough: ids come from
--artifacts). Prints throughput, errors by status and latency percentiles. At a fixed
rate: Poisson arrivals, each request sent at its time over any idle connection (more are
opened when --connections are all in flight), latency measured from its scheduled time (no
coordinated omission).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

Request = tuple[str, str, bytes | None]  # method, path, JSON body


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    connections: int = 0  # connections opened (an open loop's pool grows with what is in flight)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    def failed(self) -> int:
        """Requests not answered 2xx (so a 401 or 422 in a benchmark is not a success)."""
        return sum(n for s, n in self.statuses.items() if not 200 <= s < 300) + sum(self.errors.values())

    def summary(self) -> str:
        return (
            f"{len(self.latencies)} requests in {self.seconds:.1f}s = {self.throughput:.0f} req/s; "
            f"p50 {self.percentile(50) * 1000:.2f} ms p95 {self.percentile(95) * 1000:.2f} ms "
            f"p99 {self.percentile(99) * 1000:.2f} ms; statuses {dict(self.statuses)}; "
            f"errors {dict(self.errors)}"
        )


def _encode(host: str, method: str, path: str, body: bytes | None, extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n{extra}"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


SPIN_S = 0.002


async def _until(moment: float) -> None:
    """Sleep until ``moment`` (perf_counter seconds), on time: the event loop's timers wake up
    to a millisecond late (epoll's timeout is whole ms, rounded up, and an idle core of a VM
    wakes slowly), which an open-loop generator would add to every latency it measures. So
    sleep to within SPIN_S of the moment, then yield to the loop until it comes (this keeps
    the load core busy, which is what it is for)."""
    ahead = moment - time.perf_counter() - SPIN_S
    if ahead > 0:
        await asyncio.sleep(ahead)
    while time.perf_counter() < moment:
        await asyncio.sleep(0)


async def run_load(
    url: str,
    make_request: Callable[[random.Random], Request],
    *,
    seconds: float,
    connections: int,
    rate: float | None = None,
    seed: int = 1,
    headers: dict[str, str] | None = None,
    poisson: bool = False,
) -> Stats:
    """Drive requests for ``seconds``: closed loop at max speed over ``connections``, open
    loop at ``rate``/s evenly spaced per connection, or ``poisson``: one stream of Poisson
    arrivals (exponential gaps) at ``rate``/s, each request sent at its time over any idle
    connection (:func:`_poisson`)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    if rate and poisson:
        return await _poisson(
            host, port, make_request, extra, rate=rate, seconds=seconds, warm=connections, seed=seed
        )
    stats = Stats()
    started = time.perf_counter()
    deadline = started + seconds

    async def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        reader, writer = await asyncio.open_connection(host, port)
        interval = connections / rate if rate else 0.0
        scheduled = started + rng.random() * interval
        try:
            while True:
                now = time.perf_counter()
                if rate:
                    await _until(scheduled)
                    begin = scheduled
                    scheduled += interval
                else:
                    begin = now
                if begin >= deadline:
                    return
                method, path, body = make_request(rng)
                try:
                    status = await _exchange(reader, writer, _encode(host, method, path, body, extra))
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    stats.errors[type(exc).__name__] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                stats.latencies.append(time.perf_counter() - begin)
                stats.statuses[status] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(n) for n in range(connections)))
    stats.seconds = time.perf_counter() - started
    return stats


IDLE_S = 4.0  # a pooled connection idle longer is closed here first (uvicorn closes after 5 s)

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _poisson(
    host: str,
    port: int,
    make_request: Callable[[random.Random], Request],
    extra: str,
    *,
    rate: float,
    seconds: float,
    warm: int,
    seed: int,
) -> Stats:
    """Open loop as shoppers make it: Poisson arrivals at ``rate``/s, each request sent at its
    scheduled time whatever is still in flight, over the most recently idle connection of a
    pool (``warm`` opened in advance; one more opened when none is idle, as a browser or an
    HTTP client pool does). A request never waits on the client for another one's answer, so
    the latency measured from its scheduled time is the server's queue and work alone (with
    one connection per stream of arrivals, a request due while its connection still waits
    would be held back behind that answer)."""
    stats = Stats()
    rng = random.Random(seed)
    idle: list[tuple[Connection, float]] = []  # most recently idle last
    opened = 0

    async def connect() -> Connection:
        nonlocal opened
        opened += 1
        return await asyncio.open_connection(host, port)

    def prune(now: float) -> None:
        while idle and now - idle[0][1] > IDLE_S:
            idle.pop(0)[0][1].close()

    def release(connection: Connection) -> None:
        idle.append((connection, time.perf_counter()))

    async def send(begin: float, raw: bytes) -> None:
        prune(begin)
        connection = idle.pop()[0] if idle else None
        try:
            connection = connection or await connect()
            status = await _exchange(*connection, raw)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:  # a failed request
            stats.errors[type(exc).__name__] += 1
            if connection is not None:
                connection[1].close()
            return
        stats.latencies.append(time.perf_counter() - begin)
        stats.statuses[status] += 1
        release(connection)

    for connection in await asyncio.gather(*(connect() for _ in range(max(1, warm)))):
        release(connection)
    in_flight: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    deadline = started + seconds
    scheduled = started + rng.expovariate(rate)
    while scheduled < deadline:
        method, path, body = make_request(rng)
        raw = _encode(host, method, path, body, extra)
        await _until(scheduled)
        task = asyncio.create_task(send(scheduled, raw))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        scheduled += rng.expovariate(rate)
    await asyncio.gather(*in_flight)
    stats.seconds = time.perf_counter() - started
    for connection, _ in idle:
        connection[1].close()
    stats.connections = opened
    return stats


def mixed_traffic(
    item_ids: list[str], user_ids: list[str], mix: Mapping[str, float]
) -> Callable[[random.Random], Request]:
    """80% recommendations (half users, half 20-item sessions), 15% feedback, 5% similar."""
    kinds, weights = list(mix), list(mix.values())

    def make(rng: random.Random) -> Request:
        kind = rng.choices(kinds, weights)[0]
        if kind == "feedback":
            event = {
                "user_id": rng.choice(user_ids),
                "item_id": rng.choice(item_ids),
                "event": rng.choice(["view", "click", "add_to_cart", "purchase"]),
            }
            return "POST", "/v1/feedback", json.dumps(event).encode()
        if kind == "similar":
            return "GET", f"/v1/items/{rng.choice(item_ids)}/similar?k=10", None
        if rng.random() < 0.5:
            return "GET", f"/v1/users/{rng.choice(user_ids)}/recommendations?k=10", None
        body = {"items": rng.sample(item_ids, 20), "k": 10}
        return "POST", "/v1/recommendations", json.dumps(body).encode()

    return make


def main(argv: list[str] | None = None) -> int:
    from app.scoring import artifact

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--artifacts", type=Path, default=Path("build/artifacts"))
    parser.add_argument("--rate", default="max", help="requests per second, or 'max'")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--mix", default="recommend=80,feedback=15,similar=5")
    parser.add_argument("--api-key", help="sent as X-API-Key (feedback needs a writer key when keys are on)")
    args = parser.parse_args(argv)
    loaded = artifact.load(args.artifacts)
    mix = {k: float(v) for k, v in (p.split("=") for p in args.mix.split(","))}
    make = mixed_traffic([i["item_id"] for i in loaded.items], loaded.users, mix)
    rate = None if args.rate == "max" else float(args.rate)
    stats = asyncio.run(
        run_load(
            args.url,
            make,
            seconds=args.seconds,
            connections=args.connections,
            rate=rate,
            poisson=rate is not None,
            headers={"x-api-key": args.api_key} if args.api_key else None,
        )
    )
    print(stats.summary())
    return 1 if stats.failed() else 0
