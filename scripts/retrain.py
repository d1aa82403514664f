"""Retrain from the feedback in Redis and publish the new model if it passes the gate.

    python scripts/retrain.py [--artifacts DIR] [--archive DIR] [--redis-url URL]
        [--max-drop 0.05] [--force] [--config FILE] [--synthetic]

Defaults come from the same SHOPREC_ environment variables as the API. Without a readable
serving model (DIR/current) it refuses, unless --synthetic asks to train and publish the
embedded demo shop instead. Exit codes: 0 published, 3 kept on disk because of the quality
gate, 2 bad input (one line: files, config, no serving model), 1 anything else (a traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings
from app.scoring.artifact import ArtifactError
from models.config import TrainConfig
from models.errors import InputError


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=settings.artifacts_dir)
    parser.add_argument("--archive", type=Path, default=Path("build/feedback-archive"))
    parser.add_argument("--redis-url", default=settings.redis_url)
    parser.add_argument("--redis-prefix", default=settings.redis_prefix)
    parser.add_argument(
        "--max-drop", type=float, default=0.05, help="relative validation NDCG@100 drop allowed"
    )
    parser.add_argument("--force", action="store_true", help="publish even below the quality gate")
    parser.add_argument("--config", type=Path, help="JSON overrides (default: the serving model's)")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="with no readable serving model, train and publish the embedded demo shop",
    )
    args = parser.parse_args(argv)
    from models.pipeline import make_log
    from models.retrain import RetrainOptions, retrain

    try:
        outcome = retrain(
            RetrainOptions(
                artifacts_dir=args.artifacts,
                archive_dir=args.archive,
                redis_url=args.redis_url,
                redis_prefix=args.redis_prefix,
                redis_cluster=settings.redis_cluster,
                redis_shards=settings.redis_shards,
                max_drop=args.max_drop,
                force=args.force,
                config=TrainConfig.from_file(args.config) if args.config else None,
                synthetic=args.synthetic,
            ),
            log=make_log("retrain: "),
        )
    except (InputError, ArtifactError) as exc:  # the user's to fix; anything else is a bug
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if outcome.published else 3


if __name__ == "__main__":
    sys.exit(main())
