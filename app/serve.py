"""``python -m app.serve --workers N``: uvicorn workers forked from one process that has
already imported the service, so that they share its modules' memory.

uvicorn's own ``--workers`` starts each worker as a new interpreter that imports FastAPI,
pydantic, numpy, redis and the app again: each worker then holds ~50 MB of private memory
for the same modules (measured in docs/benchmarks.md). Here a zygote (a child of the
supervisor) imports the app, moves the objects it made out of the garbage collector's reach
(``gc.freeze``: a collection would otherwise write to every object's header and copy its page
into each worker), forks the workers on the supervisor's socket and exits; the workers, now
the supervisor's (a child subreaper), share the pages neither has written. The supervisor
itself never imports the app (a few MB). Each worker builds its own app (``create_app``: its
own Redis pool and metrics; its lifespan loads the model, whose arrays are memory-mapped and
so shared anyway). The supervisor replaces a worker that dies (through a new zygote), stops
everything when a worker cannot start (exit 3, so a broken deployment does not restart in a
loop), and on SIGTERM or SIGINT lets every worker finish its requests in flight (uvicorn's
graceful shutdown), then exits 0. A worker dies with its supervisor (Linux's parent-death
signal), so killing the supervisor never leaves workers behind.

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

STARTUP_FAILURE = 3  # a worker that never served (uvicorn's code for a failed start-up)
RESTART_PAUSE_S = 1.0  # between replacements of a worker that died soon after starting
SIGNALS = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36  # prctl(2)


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
    import uvicorn

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


def prctl(option: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``signum`` to this process when its parent exits."""
    prctl(PR_SET_PDEATHSIG, int(signum))


def fork_worker(sock: socket.socket, args: argparse.Namespace, supervisor: int, report: int) -> int:
    """A worker forked by the zygote (this process); it serves once the zygote has exited and
    it belongs to ``supervisor``, and dies with that supervisor."""
    zygote = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.close(report)  # the zygote's report is complete (end of file) when the zygote exits
        while os.getppid() == zygote:  # the zygote exits as soon as it has forked its workers
            time.sleep(0.002)
        die_with_parent()
        if os.getppid() != supervisor:  # the supervisor went first: nobody to serve for
            os._exit(1)
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        code = serve(sock, args)
    finally:
        os._exit(code)


def zygote(sock: socket.socket, args: argparse.Namespace, workers: int, report: int) -> None:
    """The child that imports the service, freezes its objects, forks ``workers`` workers,
    writes their pids to ``report`` and exits: its workers become the supervisor's (a child
    subreaper), and once it is gone the pages they have not written are shared by them alone,
    not also held by a supervisor that would otherwise own every page they have both copied
    (~33 MB at 12k items, docs/benchmarks.md). SIGTERM/SIGINT stay blocked here (the supervisor
    learns every pid); it dies with the supervisor."""
    code = STARTUP_FAILURE
    try:
        supervisor = os.getppid()
        die_with_parent(signal.SIGKILL)
        import app.main  # noqa: F401  (imported before the fork: the workers share these pages)

        gc.collect()
        gc.freeze()
        pids = [fork_worker(sock, args, supervisor, report) for _ in range(workers)]
        os.write(report, " ".join(map(str, pids)).encode())
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def supervise(sock: socket.socket, args: argparse.Namespace) -> int:
    """Start the workers through a zygote, replace those that die (through a new zygote: a
    replacement shares no pages with the others), forward SIGTERM/SIGINT. This process never
    imports the service: it stays a few MB."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    workers: dict[int, float] = {}  # pid -> start time
    zygotes: dict[int, int] = {}  # pid -> the read end of the pipe its workers' pids come by
    early: dict[int, int] = {}  # workers reaped before their zygote's report was read
    stopping = False
    code = 0

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            os.kill(pid, signal.SIGTERM)

    def start(n: int) -> None:
        # Signals wait until the zygote's pid is known (the zygote keeps them blocked).
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                zygote(sock, args, n, write)
            os.close(write)
            zygotes[pid] = read
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    def ended(pid: int, exit_code: int) -> None:
        nonlocal code
        started = workers.pop(pid)
        if stopping:
            return
        if exit_code == STARTUP_FAILURE:
            print(f"app.serve: worker {pid} could not start; stopping", file=sys.stderr, flush=True)
            code = STARTUP_FAILURE
            stop(signal.SIGTERM, None)
            return
        print(f"app.serve: worker {pid} exited ({exit_code}); starting another", file=sys.stderr, flush=True)
        if time.monotonic() - started < RESTART_PAUSE_S:
            time.sleep(RESTART_PAUSE_S)
        start(1)

    for signum in SIGNALS:
        signal.signal(signum, stop)
    start(args.workers)
    while workers or zygotes:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        exit_code = os.waitstatus_to_exitcode(status)
        if pid in zygotes:
            read = zygotes.pop(pid)
            with os.fdopen(read, "rb") as pipe:
                pids = [int(p) for p in pipe.read().split()]
            if exit_code != 0 and not stopping:
                print("app.serve: the service could not be imported; stopping", file=sys.stderr, flush=True)
                code = STARTUP_FAILURE
                stop(signal.SIGTERM, None)
            now = time.monotonic()
            for worker in pids:
                workers[worker] = now
                if stopping:
                    os.kill(worker, signal.SIGTERM)
            for worker in [w for w in pids if w in early]:
                ended(worker, early.pop(worker))
        elif pid in workers:
            ended(pid, exit_code)
        else:
            early[pid] = exit_code
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sock = listen(args.host, args.port)
    if args.workers == 1:
        return serve(sock, args)
    return supervise(sock, args)


if __name__ == "__main__":
    sys.exit(main())
