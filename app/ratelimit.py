"""Per-client rate limit (off by default): a token bucket per client, answered with 429 and
``Retry-After`` when empty.

A client is its API key when it sends one (kept as a hash, never the key) and its address
otherwise. Buckets live in the process, so with N workers a client gets up to N times the
rate; the bucket table is capped, dropping the least recently seen client first.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import send_error

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class TokenBuckets:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.max_clients, self.clock = rate_per_s, burst, max_clients, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def take(self, client: str) -> float:
        """Take one token; returns 0 when allowed, else the seconds until a token is free."""
        now = self.clock()
        tokens, at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def client_of(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"x-api-key":
            return "key:" + hashlib.sha256(value).hexdigest()[:16]
    address = scope.get("client")
    return f"addr:{address[0]}" if address else "addr:unknown"


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, buckets: TokenBuckets) -> None:
        self.app, self.buckets = app, buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(client_of(scope))
        if not wait:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        message = f"rate limit of {self.buckets.rate:g} requests/s exceeded; retry in {retry_after} s"
        await send_error(
            send, 429, "rate_limited", message, headers=[(b"retry-after", str(retry_after).encode())]
        )
