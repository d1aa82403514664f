"""Redis clients for one server or a Redis Cluster (``SHOPREC_REDIS_CLUSTER=true``).

On a cluster, every multi-key write touches keys of one hash tag (see app.store.keys), so
it stays on one slot; pub/sub goes through a plain connection to the given node, since
classic pub/sub messages are broadcast to every node of a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.errors import StoreFailed, StoreUnavailable

AsyncClient = aioredis.Redis | RedisCluster
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


@contextlib.contextmanager
def failures(doing: str) -> Iterator[None]:
    """Map what Redis raises while ``doing`` to the domain errors: StoreUnavailable when it
    does not answer in time, StoreFailed when it answers with an error (out of memory, a
    read-only replica, a cluster in the middle of a failover)."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"{doing}: redis is not answering: {exc}") from exc
    except RedisError as exc:
        raise StoreFailed(f"{doing}: redis answered with an error: {exc}") from exc


def connect(url: str, *, cluster: bool, timeout_s: float | None) -> AsyncClient:
    options = {"decode_responses": True, "socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if cluster:
        return RedisCluster.from_url(url, **options)
    return aioredis.from_url(url, health_check_interval=30, **options)


def connect_for_pubsub(url: str, *, connect_timeout_s: float) -> aioredis.Redis:
    """A node connection without a read timeout: a subscription is idle for hours."""
    return aioredis.from_url(
        url, decode_responses=True, socket_connect_timeout=connect_timeout_s, health_check_interval=30
    )


def connect_sync(url: str, *, cluster: bool) -> redis.Redis | redis.RedisCluster:
    if cluster:
        return redis.RedisCluster.from_url(url, decode_responses=True)
    return redis.Redis.from_url(url, decode_responses=True)


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster | redis.RedisCluster)


async def run_scripts(
    client: AsyncClient, script: AsyncScript, calls: Sequence[tuple[list[str], list[Any]]]
) -> list[Any]:
    """The replies of ``script`` called with each (keys, args): one call alone, several in one
    pipeline; on a cluster, where each call writes its own slot and scripts do not pipeline,
    all at once. Raises the first failure once every call has finished."""
    if len(calls) == 1:
        return [await script(keys=calls[0][0], args=calls[0][1])]
    if is_cluster(client):
        replies = await asyncio.gather(*(script(keys=k, args=a) for k, a in calls), return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies
    async with client.pipeline(transaction=False) as pipe:
        for k, a in calls:
            await script(keys=k, args=a, client=pipe)  # type: ignore[arg-type]
        return await pipe.execute()
