"""Train on a shop's logs and publish a new artifact version.

python scripts/train.py --interactions FILE [--items FILE]
    [--format auto|generic|online-retail|s3rec] --out DIR [--config FILE]
python scripts/train.py --synthetic --out DIR   # the embedded demo shop
    [--curves PNG]   also draw the training curves of every component (docs/training_synthetic.png)

On several machines, run the same command on each with TF_CONFIG naming them all
(docs/scaling.md): the Keras models train together, the chief (worker 0) does the rest and
publishes, the other workers exit 0 without writing.

Exit codes: 0 published (or a worker's share done), 2 bad input (one line naming the file,
column and rule, or the config key), 1 anything else (a bug: a traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.scoring.artifact import ArtifactError
from models.config import TrainConfig
from models.data import FORMATS, load
from models.errors import InputError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--interactions", type=Path, help="CSV/Parquet/xlsx log, or S3-Rec .txt")
    source.add_argument("--synthetic", action="store_true", help="generate the demo shop")
    parser.add_argument("--items", type=Path, help="item catalog (or item2attributes.json)")
    parser.add_argument("--format", choices=FORMATS, default="auto")
    parser.add_argument("--out", type=Path, required=True, help="artifacts directory")
    parser.add_argument("--config", type=Path, help="JSON overrides of models.config.TrainConfig")
    parser.add_argument("--epochs", type=int, help="shortcut for vae.epochs")
    parser.add_argument("--curves", type=Path, help="PNG of the training curves of every component")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = TrainConfig.from_file(args.config) if args.config else TrainConfig()
        if args.epochs:
            config.vae.epochs = args.epochs
        from models import pipeline, synthetic
        from models.distributed import placement

        place = placement()  # from TF_CONFIG, before TensorFlow's first op
        log = pipeline.make_log("" if place.is_chief else f"worker {place.rank}: ")
        source: dict[str, Any]
        if args.synthetic:
            shop = synthetic.ShopConfig()
            dataset = synthetic.generate(shop)
            source = {"kind": "synthetic", "shop": dataclasses.asdict(shop)}
        else:
            dataset = load(args.interactions, args.items, fmt=args.format)
            source = {
                "kind": "files",
                "interactions": str(args.interactions.resolve()),
                "items": str(args.items.resolve()) if args.items else None,
                "format": args.format,
            }
        log(f"loaded {len(dataset.interactions):,} interaction rows, {len(dataset.items):,} catalog rows")
        if not place.is_chief:
            pipeline.follow(dataset, config, log=log)
            log("done; the chief writes the artifact")
            return 0
        result = pipeline.run(dataset, config, out_dir=args.out, log=log, source=source)
        if args.curves:
            from models import plots

            name = "synthetic shop" if args.synthetic else args.interactions.name
            plots.training_curves({name: result.report}, args.curves)
            log(f"training curves drawn in {args.curves}")
    except (InputError, ArtifactError) as exc:  # the user's to fix; anything else is a bug
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
