"""Evaluate through the serving code.

    python scripts/evaluate.py --artifacts DIR
        test metrics of DIR/current (or a version folder), loaded and scored as served
    python scripts/evaluate.py --datasets online-retail amazon-beauty amazon-sports \\
        [--data-dir ../shared/datasets] [--report docs/evaluation.md] [--cold-start NAME ...]
        trains on each dataset with the same protocol and writes the comparison report
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
from models.errors import DataError, InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument("--datasets", nargs="+")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--work-dir", type=Path, default=Path("build/evaluation"))
    parser.add_argument("--report", type=Path, default=Path("docs/evaluation.md"))
    parser.add_argument("--config", type=Path)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the report from WORK_DIR/NAME.json of earlier runs",
    )
    parser.add_argument(
        "--cold-start",
        nargs="*",
        default=[],
        metavar="NAME",
        help="datasets that also get the cold-start experiment",
    )
    args = parser.parse_args(argv)
    if not args.artifacts and not args.datasets:
        parser.error("give --artifacts DIR or --datasets NAME ...")
    from models import report
    from models.pipeline import make_log

    try:
        if args.artifacts:
            metrics = report.served_metrics(args.artifacts)
            for name, row in metrics.items():
                print(f"{name:8s} " + " ".join(f"{k} {v:.4f}" for k, v in row.items()))
            return 0
        config = TrainConfig.from_file(args.config) if args.config else TrainConfig()
        command = "python scripts/evaluate.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        results = {}
        for name in args.datasets:
            if name not in report.SOURCES:
                parser.error(f"unknown dataset {name!r}; known: {', '.join(report.SOURCES)}")
            if args.report_only:
                earlier = args.work_dir / f"{name}.json"
                if not earlier.exists():
                    raise DataError(f"{earlier}: no earlier run of {name}; run without --report-only first")
                results[name] = json.loads(earlier.read_text())
                continue
            log = make_log(f"{name}: ")
            dataset = report.load_source(report.SOURCES[name], args.data_dir)
            results[name] = report.evaluate_dataset(
                dataset,
                config,
                work_dir=args.work_dir / name,
                log=log,
                cold_start=name in args.cold_start,
            )
            (args.work_dir / f"{name}.json").write_text(json.dumps(results[name], default=float))
        machine = f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}"
        report.write_report(results, args.report, command=command, machine=machine)
        print(f"report written to {args.report}")
    except (InputError, ArtifactError) as exc:  # the user's to fix; anything else is a bug
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
