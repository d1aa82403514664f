"""Evaluate through the serving code.

    python scripts/evaluate.py --datasets online-retail amazon-beauty amazon-sports \\
        [--data-dir ../shared/datasets] [--report docs/evaluation.md] [--config FILE] \\
        [--cold-start NAME ...] [--rare-items NAME ...] [--no-references] [--no-interactions-only]
        per dataset: hold test users out of the data before cleaning, train with the same
        command as scripts/train.py (with and without item attributes), score the exported
        artifacts and the references on the test users, and write the comparison report
    python scripts/evaluate.py --artifacts DIR --interactions FILE [--items FILE] [--format F]
        test metrics of DIR/current (or a version folder), loaded and scored as served, on the
        users of FILE (held out of its training): 80% of each user's items as history, 20% as
        targets (a target the artifact does not know counts as a miss)
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.scoring.artifact import ArtifactError
from models.config import TrainConfig
from models.data import FORMATS
from models.errors import DataError, InputError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument("--interactions", type=Path, help="held-out users' interactions (with --artifacts)")
    parser.add_argument("--items", type=Path)
    parser.add_argument("--format", choices=FORMATS, default="auto")
    parser.add_argument("--datasets", nargs="+")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--work-dir", type=Path, default=Path("build/evaluation"))
    parser.add_argument("--report", type=Path, default=Path("docs/evaluation.md"))
    parser.add_argument("--config", type=Path)
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the report from WORK_DIR/NAME.json"
    )
    parser.add_argument("--cold-start", nargs="*", default=[], metavar="NAME")
    parser.add_argument("--rare-items", nargs="*", default=[], metavar="NAME")
    parser.add_argument("--no-references", action="store_true", help="skip the reference models")
    parser.add_argument(
        "--no-interactions-only",
        action="store_true",
        help="train only the served model with attributes (not the one without them)",
    )
    args = parser.parse_args(argv)
    if not (args.artifacts and args.interactions) and not args.datasets:
        parser.error("give --artifacts DIR --interactions FILE, or --datasets NAME ...")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from models import report, report_page
    from models.data import load
    from models.pipeline import make_log

    try:
        config = TrainConfig.from_file(args.config) if args.config else TrainConfig()
        if args.artifacts:
            raw = load(args.interactions, args.items, fmt=args.format)
            _, heldout = report.hold_out(raw, _everyone(config))
            metrics, _ = report.served_metrics(args.artifacts, heldout)
            for name, row in metrics.items():
                print(f"{name:8s} " + " ".join(f"{k} {v:.4f}" for k, v in row.items()))
            return 0
        command = "python scripts/evaluate.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        results = {}
        for name in args.datasets:
            if name not in report.SOURCES:
                print(f"error: unknown dataset {name!r}; known: {', '.join(report.SOURCES)}", file=sys.stderr)
                return 2
            if args.report_only:
                earlier = args.work_dir / f"{name}.json"
                if not earlier.exists():
                    raise DataError(f"{earlier}: no earlier run of {name}; run without --report-only first")
                results[name] = json.loads(earlier.read_text())
                continue
            dataset = report.load_source(report.SOURCES[name], args.data_dir)
            results[name] = report.evaluate_dataset(
                dataset,
                config,
                work_dir=args.work_dir / name,
                log=make_log(f"{name}: "),
                cold_start=name in args.cold_start,
                rare_items=name in args.rare_items,
                references=not args.no_references,
                interactions_only=not args.no_interactions_only,
            )
            results[name]["command"] = command
            args.work_dir.mkdir(parents=True, exist_ok=True)
            (args.work_dir / f"{name}.json").write_text(json.dumps(results[name], default=float))
        machine = f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}"
        report_page.write_report(results, args.report, command=command, machine=machine)
        print(f"report written to {args.report}")
    except (InputError, ArtifactError) as exc:  # the user's to fix; anything else is a bug
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _everyone(config: TrainConfig) -> TrainConfig:
    """The split settings that hold out every user of the file."""
    import dataclasses

    split = dataclasses.replace(config.split, heldout_fraction=1.0, max_heldout_users=10**9)
    return dataclasses.replace(config, split=split)


if __name__ == "__main__":
    sys.exit(main())
