"""``python -m app.serve --workers N``: uvicorn workers forked from one process that has
already imported the service, so that they share its modules' memory.

uvicorn's own ``--workers`` starts each worker as a new interpreter that imports FastAPI,
pydantic, numpy, redis and the app again: each worker then holds ~50 MB of private memory
for the same modules (measured in docs/benchmarks.md). Here the supervisor imports the app,
moves the objects it made out of the garbage collector's reach (``gc.freeze``: a collection
would otherwise write to every object's header and copy its page into each worker), binds
the socket and forks. Each worker then builds its own app (``create_app``: its own Redis
pool and metrics; its lifespan loads the model, whose arrays are memory-mapped and so shared
anyway). The supervisor replaces a worker that dies, stops everything when a worker cannot
start (exit 3, so a broken deployment does not restart in a loop), and on SIGTERM or SIGINT
lets every worker finish its requests in flight (uvicorn's graceful shutdown), then exits 0.
A worker dies with its supervisor (Linux's parent-death signal), so killing the supervisor
never leaves workers behind.

With ``--workers 1`` (the default without ``WEB_CONCURRENCY``) the process serves itself: no
supervisor, no fork.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import signal
import socket
import sys
import time
import traceback

import uvicorn

STARTUP_FAILURE = 3  # a worker that never served (uvicorn's code for a failed start-up)
RESTART_PAUSE_S = 1.0  # between replacements of a worker that died soon after starting
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1")),
        help="processes accepting on the port (default $WEB_CONCURRENCY or 1; one per core)",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    return args


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(sock: socket.socket, args: argparse.Namespace) -> int:
    """One worker: uvicorn on the bound socket until SIGTERM/SIGINT; its exit code, 3 if it
    never started serving (bad settings, an app that fails to build: uvicorn has logged why)."""
    config = uvicorn.Config(
        "app.main:create_app", factory=True, log_level=args.log_level, access_log=args.access_log
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn's own way out when it cannot load the app; it has said why
        pass
    except Exception:  # e.g. invalid SHOPREC_ settings: the factory's error, then exit 3
        traceback.print_exc()
        if server.started:
            return 1
    return 0 if server.started else STARTUP_FAILURE


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent exits (prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)


def fork_worker(sock: socket.socket, args: argparse.Namespace) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        die_with_parent()
        code = serve(sock, args)
    finally:
        os._exit(code)


def supervise(sock: socket.socket, args: argparse.Namespace) -> int:
    workers: dict[int, float] = {}  # pid -> start time
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            os.kill(pid, signal.SIGTERM)

    def start() -> None:
        # Signals wait until the new pid is known, so that a SIGTERM reaches every worker.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            workers[fork_worker(sock, args)] = time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    for signum in SIGNALS:
        signal.signal(signum, stop)
    gc.collect()
    gc.freeze()
    for _ in range(args.workers):
        start()
    code = 0
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        started = workers.pop(pid, None)
        if started is None or stopping:
            continue
        exit_code = os.waitstatus_to_exitcode(status)
        if exit_code == STARTUP_FAILURE:
            print(f"app.serve: worker {pid} could not start; stopping", file=sys.stderr, flush=True)
            code = STARTUP_FAILURE
            stop(signal.SIGTERM, None)
            continue
        print(f"app.serve: worker {pid} exited ({exit_code}); starting another", file=sys.stderr, flush=True)
        if time.monotonic() - started < RESTART_PAUSE_S:
            time.sleep(RESTART_PAUSE_S)
        start()
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import app.main  # noqa: F401  (imported before the fork: the workers share these pages)

    sock = listen(args.host, args.port)
    if args.workers == 1:
        return serve(sock, args)
    return supervise(sock, args)


if __name__ == "__main__":
    sys.exit(main())
