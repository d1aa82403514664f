"""Generate a large synthetic shop (models/synthetic_large.py) as Parquet files.

    python scripts/generate_shop.py --out DIR [--items 1000000] [--users 1000000]
        [--mean-events 12] [--seed N]

Writes DIR/interactions.parquet, DIR/items.parquet (the generic format of scripts/train.py)
and DIR/shop.json (the settings).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--mean-events", type=float, default=12.0)
    parser.add_argument("--themes", type=int, help="default: items / 200")
    parser.add_argument("--seed", type=int, default=20261128)
    args = parser.parse_args(argv)
    from models.synthetic_large import LargeShopConfig, generate, write

    config = LargeShopConfig(
        n_items=args.items,
        n_users=args.users,
        mean_events=args.mean_events,
        n_themes=args.themes or max(10, args.items // 200),
        seed=args.seed,
    )
    started = time.perf_counter()
    dataset = generate(config)
    interactions, items = write(dataset, args.out, config)
    print(
        f"{len(dataset.interactions):,} events of {config.n_users:,} shoppers on {config.n_items:,} items "
        f"in {time.perf_counter() - started:.0f} s: {interactions}, {items}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
