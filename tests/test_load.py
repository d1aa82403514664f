"""The open-loop load generator of tools/load.py (what the benchmarks' latencies rest on)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from tools.load import _until, run_load

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


def _answering(
    hold_first_s: float = 0.0,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A keep-alive server's connection handler: ANSWER to every request, the server's first
    answer held for ``hold_first_s``."""
    answered = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                answered += 1
                if answered == 1:
                    await asyncio.sleep(hold_first_s)
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return serve


def test_open_loop_sends_at_the_rate_asked_and_never_before_a_request_is_due():
    async def scenario() -> tuple[int, int, list[float]]:
        server = await asyncio.start_server(_answering(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        stats = await run_load(
            f"http://127.0.0.1:{port}", lambda r: ("GET", "/", None), seconds=2.0, connections=4,
            rate=100.0, poisson=True,
        )  # fmt: skip
        early = []
        rng = random.Random(3)
        for _ in range(50):
            moment = time.perf_counter() + rng.random() * 0.004
            await _until(moment)
            early.append(moment - time.perf_counter())
        server.close()
        return len(stats.latencies), stats.failed(), early

    sent, failed, early = asyncio.run(scenario())
    assert 120 <= sent <= 280, sent  # Poisson arrivals at 100/s for 2 s: 200 +- 14 (sd)
    assert failed == 0
    assert max(early) <= 0, max(early)  # latency counts from the scheduled time: never sent early


def test_open_loop_sends_each_request_at_its_time_while_an_earlier_answer_is_slow():
    """Poisson arrivals are not held back on the client: the server holds its first answer for
    0.5 s, and the requests due meanwhile go out on more connections, each answered at once."""

    async def scenario() -> tuple[float, int, int, int]:
        server = await asyncio.start_server(_answering(hold_first_s=0.5), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        stats = await run_load(
            f"http://127.0.0.1:{port}", lambda r: ("GET", "/", None), seconds=1.5, connections=1,
            rate=100.0, poisson=True,
        )  # fmt: skip
        server.close()
        return stats.percentile(90), stats.connections, len(stats.latencies), stats.failed()

    p90, connections, sent, failed = asyncio.run(scenario())
    assert failed == 0 and sent >= 100, (failed, sent)
    assert connections >= 2, connections  # the pool grew while the first answer was held
    assert p90 < 0.05, p90  # only the held request waited (one connection: every request in 0.5 s)


def test_the_benchmark_reads_the_servers_own_request_histogram(private_redis, artifacts_dir, prefix):
    """scripts/bench.py's server-side rows: the app's histogram of POST /v1/recommendations,
    read from a real server before and after some requests, counts exactly those requests."""
    import httpx

    from scripts.bench import gc_pauses, handled_within, long_pauses, mean_handled, shares
    from tools.server import AUTH, api_env, uvicorn_process

    with uvicorn_process(api_env(artifacts_dir, redis_url=private_redis.url, prefix=prefix)) as api:
        before = handled_within(api.url)
        started = time.perf_counter()
        for _ in range(7):
            answer = httpx.post(f"{api.url}/v1/recommendations", json={"items": [], "k": 5}, headers=AUTH)
            assert answer.status_code == 200
        client_mean = (time.perf_counter() - started) / 7
        httpx.get(f"{api.url}/v1/items/missing/similar", headers=AUTH)  # another route: not counted
        after = handled_within(api.url)
        pauses = gc_pauses(api.url)  # the collector ran in those requests (young generation at least)
    assert after["+Inf"] - before.get("+Inf", 0.0) == 7
    assert pauses["+Inf"] > 0 and long_pauses({}, pauses).startswith(f"{int(pauses['+Inf'])} / ")
    assert shares(before, after, ("+Inf",)) == "100%"
    assert 0 < mean_handled(before, after) < client_mean  # the app's own part of each request
