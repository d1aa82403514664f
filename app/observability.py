"""Prometheus metrics (one registry per app) and the ASGI middleware that gives every
request an id, a latency observation, a JSON access-log line, the body-size limit and the
JSON-only rule for request bodies."""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import StoreUnavailable, send_error

access_log = logging.getLogger("shoprec.access")
log = logging.getLogger("shoprec")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "shoprec_request_seconds",
            "Request latency by route",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.recommendations = Counter(
            "shoprec_recommendations_total",
            "Recommendations served by strategy",
            ["strategy"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "shoprec_feedback_events_total",
            "Feedback events by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.model = Info("shoprec_model", "Serving model version", registry=self.registry)
        self.builds = Counter(
            "shoprec_model_builds_total",
            "Serving models built from an artifact and the catalog changes, by cause (model: a "
            "version loaded; catalog: a catalog change)",
            ["cause"],
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "shoprec_redis_errors_total",
            "Redis failures by code: store_unavailable (no answer in time), store_error (an error "
            "answer such as OOM or READONLY)",
            ["code"],
            registry=self.registry,
        )
        self.redis_up = Gauge(
            "shoprec_redis_up",
            "1 when Redis answered a PING at the last scrape of /metrics, else 0",
            registry=self.registry,
        )
        self.gc_pauses = Histogram(
            "shoprec_gc_pause_seconds",
            "Pauses of the cyclic garbage collector, by generation (every request waits for them)",
            ["generation"],
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=self.registry,
        )
        self._gc_started = 0.0
        self._logged: dict[str, tuple[float, int]] = {}  # code -> (last logged at, suppressed since)

    def watch_gc(self) -> None:
        """Time every collection of this process (until ``unwatch_gc``)."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def unwatch_gc(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.labels(str(info["generation"])).observe(time.perf_counter() - self._gc_started)

    def store_error(self, exc: StoreUnavailable, where: str) -> None:
        """Count a Redis failure and log it: the first of a kind, then one line per
        ``LOG_EVERY_S`` with the number of failures since (an outage fails every request)."""
        self.redis_errors.labels(exc.code).inc()
        now = time.monotonic()
        last, suppressed = self._logged.get(exc.code, (-LOG_EVERY_S, 0))
        if now - last < LOG_EVERY_S:
            self._logged[exc.code] = (last, suppressed + 1)
            return
        self._logged[exc.code] = (now, 0)
        record = {"event": "redis_error", "code": exc.code, "where": where, "error": exc.message}
        log.warning(json.dumps(record | ({"similar_since_last_line": suppressed} if suppressed else {})))


LOG_EVERY_S = 10.0


def settle_heap() -> None:
    """Move every object alive now (the imported framework, the app, the serving model's
    Python objects) out of the cyclic collector's reach (``gc.freeze``). A full collection
    otherwise walks all of them, ~70,000 objects at 12k items: 25-38 ms in which no request
    is answered, the tail of the latency (docs/benchmarks.md). Reference counting still frees
    them (a replaced model is: it holds no reference cycle); only garbage cycles among them
    would wait for ``release_heap``. Called when the app has started and after each model
    load; the objects frozen before a fork (app/serve.py) stay untouched, and shared.

    Then the C heap's free pages go back to the system (glibc's ``malloc_trim``): a model
    load's temporaries (the moments' covariance and eigenvectors, ~13 MB at Beauty's 601
    dimensions) would otherwise stay each worker's own memory (a worker's private memory
    after the load: 18.4 -> 4.8 MB)."""
    gc.collect()
    gc.freeze()
    _trim_c_heap()


def _trim_c_heap() -> None:
    """``malloc_trim(0)`` where the C library has it (glibc); nothing elsewhere."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: libc's on Linux
    except (OSError, AttributeError):
        return
    trim(0)


def release_heap() -> None:
    """At shutdown: the frozen objects back in the collector's reach (a process, such as a
    test run, may build many apps)."""
    gc.unfreeze()


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _is_json(headers: dict[bytes, bytes]) -> bool:
    """A JSON media type (``application/json``, ``application/*+json``), or no body at all."""
    content_type = headers.get(b"content-type")
    if content_type is None:  # fine without a body, e.g. POST /v1/admin/reload
        return headers.get(b"content-length", b"0") == b"0" and b"transfer-encoding" not in headers
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int, log_requests: bool):
        self.app, self.metrics = app, metrics
        self.max_body_bytes, self.log_requests = max_body_bytes, log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or os.urandom(16).hex()
        status = 500
        length = headers.get(b"content-length")
        rejected = None
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            rejected = 413, "payload_too_large", f"request body over {self.max_body_bytes} bytes"
        elif scope["method"] in BODY_METHODS and not _is_json(headers):
            rejected = 415, "unsupported_media_type", "send JSON with Content-Type: application/json"
        if rejected is not None:
            status = rejected[0]
            await send_error(send, *rejected, headers=[(b"x-request-id", request_id.encode())])
            self._observe(scope, status, started, request_id)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Raised inside the app, so the error map answers 413.
                    raise HTTPException(413, f"request body over {self.max_body_bytes} bytes")
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            self._observe(scope, status, started, request_id)

    def _observe(self, scope: Scope, status: int, started: float, request_id: str) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.metrics.latency.labels(scope["method"], path, str(status)).observe(elapsed)
        if self.log_requests:
            record: dict[str, Any] = {
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "route": path,
                "status": status,
                "ms": round(elapsed * 1000, 2),
            }
            access_log.info(json.dumps(record))
