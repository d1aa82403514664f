"""Real processes for tests, benchmarks, fuzz and soak: a private redis-server and the API
under uvicorn. The one place that starts either.

    start_redis(folder, port, *options)       redis-server answering PING
    RedisServer(folder, *options)             the same, restartable on its port, killable
    spawn_api / wait_ready                    a uvicorn process, then GET /readyz == 200
    uvicorn_process(env)                      context manager: started, ready, stopped
    start_server / running_server             the API on an artifacts dir with an admin key
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "script-admin-key"
AUTH = {"x-api-key": ADMIN_KEY}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- Redis ------------------------------------------------------------------------------
def start_redis(folder: Path, port: int, *options: str, cpus: str | None = None) -> subprocess.Popen[bytes]:
    """redis-server on ``port`` keeping its files in ``folder``, answering PING when this returns.

    options: more redis-server arguments, e.g. ``"--appendonly", "yes"``; cpus: pinned to
    these cores (``taskset -c``).
    """
    pin = ["taskset", "-c", cpus] if cpus is not None else []
    command = [
        *pin,
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(folder),
        *options,
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        for _ in range(400):
            try:
                client.ping()
                return server
            except redis.ConnectionError:
                if server.poll() is not None:
                    break
                time.sleep(0.025)
    finally:
        client.close()
    server.kill()
    server.wait()
    raise RuntimeError(f"redis-server on port {port} did not start (exit code {server.poll()})")


NO_PERSISTENCE = ("--save", "", "--appendonly", "no")
APPEND_ONLY = ("--save", "", "--appendonly", "yes", "--appendfsync", "everysec")


class RedisServer:
    """A private redis-server on a free port, files in ``folder``; restartable on the same port
    (with ``APPEND_ONLY`` it replays its append-only file)."""

    def __init__(self, folder: Path, *options: str, cpus: str | None = None) -> None:
        self.folder, self.options = folder, options or NO_PERSISTENCE
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.cpus = cpus

    def start(self) -> RedisServer:
        self.process = start_redis(self.folder, self.port, *self.options, cpus=self.cpus)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final write."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


@contextlib.contextmanager
def private_redis(folder: Path, *options: str, cpus: str | None = None) -> Iterator[RedisServer]:
    """A started RedisServer, killed afterwards."""
    server = RedisServer(folder, *options, cpus=cpus).start()
    try:
        yield server
    finally:
        server.kill()


# -- the API ----------------------------------------------------------------------------
def server_env(artifacts_dir: Path | str, redis_url: str, prefix: str, **settings: object) -> dict[str, str]:
    """The SHOPREC_ environment of a server or script process: these three, plus ``settings``
    by field name (``log_requests=False`` -> ``SHOPREC_LOG_REQUESTS=False``)."""
    values = {"artifacts_dir": artifacts_dir, "redis_url": redis_url, "redis_prefix": prefix, **settings}
    return {f"SHOPREC_{name.upper()}": str(value) for name, value in values.items()}


UVICORN = ("uvicorn", "app.main:create_app", "--factory", "--port", "{port}")


def spawn_api(
    env: Mapping[str, str],
    port: int,
    *,
    command: Sequence[str] = UVICORN,
    output: IO[str] | None = None,
    cpus: str | None = None,
) -> subprocess.Popen[str]:
    """``python -m <command>`` (``{port}`` replaced) in the repository root with ``env`` added
    to this process's environment. ``output`` receives stdout and stderr (default: inherited;
    never an unread pipe, which fills up under load and blocks the server); ``cpus`` pins it
    (``taskset -c``)."""
    words = [str(port) if word == "{port}" else word for word in command]
    pin = ["taskset", "-c", cpus] if cpus is not None else []
    return subprocess.Popen(
        [*pin, sys.executable, "-m", *words],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
        text=True,
    )


def wait_ready(base_url: str, *, seconds: float = 60.0, process: subprocess.Popen[str] | None = None) -> None:
    """Until GET /readyz answers 200 (a model is loaded); fails early if ``process`` exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{base_url}: the server exited with code {process.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{base_url} did not become ready in {seconds:g} s")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a supervisor's workers)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ApiProcess:
    url: str
    process: subprocess.Popen[str]
    log: Path  # its stdout and stderr

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextlib.contextmanager
def uvicorn_process(
    env: Mapping[str, str], *, command: Sequence[str] = UVICORN, port: int | None = None
) -> Iterator[ApiProcess]:
    """A real uvicorn process with the given SHOPREC_ environment, ready when entered, its
    output in a temporary file; terminated on exit."""
    port = port or free_port()
    with tempfile.NamedTemporaryFile("w+", prefix="uvicorn-", suffix=".log") as output:
        process = spawn_api(env, port, command=command, output=output)
        api = ApiProcess(f"http://127.0.0.1:{port}", process, Path(output.name))
        try:
            wait_ready(api.url, process=process)
            yield api
        finally:
            stop(process)


def api_env(artifacts_dir: Path, *, redis_url: str, prefix: str, **settings: object) -> dict[str, str]:
    """The environment of the scripts' servers: an admin key (``AUTH``), no access log."""
    keys = json.dumps({ADMIN_KEY: "admin"})
    return server_env(artifacts_dir, redis_url, prefix, log_requests=False, api_keys=keys, **settings)


def start_server(
    artifacts_dir: Path, port: int, *, redis_url: str, prefix: str, **settings: object
) -> subprocess.Popen[str]:
    """One uvicorn worker with an admin key, ready (GET /readyz 200) when this returns.

    settings: more SHOPREC_ settings by field name, e.g. ``rate_limit_per_s=5``.
    """
    env = api_env(artifacts_dir, redis_url=redis_url, prefix=prefix, **settings)
    command = (*UVICORN, "--no-access-log", "--log-level", "warning")
    server = spawn_api(env, port, command=command)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process=server)
    except RuntimeError:
        stop(server)
        raise
    return server


@contextlib.contextmanager
def running_server(artifacts_dir: Path, *, redis_url: str, prefix: str, **settings: object) -> Iterator[str]:
    """Yields the base URL of a started server; stops it afterwards."""
    port = free_port()
    server = start_server(artifacts_dir, port, redis_url=redis_url, prefix=prefix, **settings)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)
