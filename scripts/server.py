"""Real processes for the benchmark, fuzz and soak scripts (and fault tests): the API under
uvicorn, and a private redis-server."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "script-admin-key"
AUTH = {"x-api-key": ADMIN_KEY}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(folder: Path, port: int, *options: str) -> subprocess.Popen[bytes]:
    """redis-server on ``port`` keeping its files in ``folder``, answering PING when this returns.

    options: more redis-server arguments, e.g. ``"--appendonly", "yes"``.
    """
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), *options]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return server
        except redis.ConnectionError:
            time.sleep(0.025)
    server.kill()
    raise RuntimeError(f"redis-server on port {port} did not start")


def start_server(
    artifacts_dir: Path, port: int, *, redis_url: str, prefix: str, **settings: str
) -> subprocess.Popen[bytes]:
    """One uvicorn worker with an admin key, ready (GET /readyz 200) when this returns.

    settings: more SHOPREC_ variables, e.g. ``rate_limit_per_s="5"``.
    """
    env = {
        **os.environ,
        "SHOPREC_ARTIFACTS_DIR": str(artifacts_dir),
        "SHOPREC_REDIS_URL": redis_url,
        "SHOPREC_REDIS_PREFIX": prefix,
        "SHOPREC_LOG_REQUESTS": "false",
        "SHOPREC_API_KEYS": json.dumps({ADMIN_KEY: "admin"}),
        **{f"SHOPREC_{name.upper()}": value for name, value in settings.items()},
    }
    command = ["uvicorn", "app.main:create_app", "--factory", "--port", str(port), "--no-access-log"]
    server = subprocess.Popen([sys.executable, "-m", *command, "--log-level", "warning"], cwd=ROOT, env=env)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"the API on port {port} did not become ready (exit code {server.poll()})")


@contextlib.contextmanager
def running_server(artifacts_dir: Path, *, redis_url: str, prefix: str, **settings: str) -> Iterator[str]:
    """Yields the base URL of a started server; stops it afterwards."""
    port = free_port()
    server = start_server(artifacts_dir, port, redis_url=redis_url, prefix=prefix, **settings)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=15)
