"""Feedback ingestion benchmark, attribution off and on in one run; writes its section of
docs/benchmarks.md (method: tools/feedback_bench.py).

    python scripts/bench_feedback.py [--artifacts DIR] [--seconds 10] [--repeats 3]
        [--out docs/benchmarks.md] [--machine "2 cores, shared"]
    python scripts/bench_feedback.py --serve-cost [--out docs/benchmarks.md]

--serve-cost measures instead what attribution adds to each answered recommendation list
(Redis time and memory; with and without implicit impressions).

Without --artifacts, a small synthetic artifact (models/bench_artifact.py, 5,000 items) is
built in build/bench-feedback the first time. Needs redis-server and taskset, and 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.feedback_bench import BenchConfig, report, run, serve_cost, serve_cost_table  # noqa: E402
from tools.markdown import replace_section  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--artifacts", type=Path, help="artifacts dir (DIR/current); default: a small synthetic one"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--out", type=Path, help="write the section to this Markdown file")
    parser.add_argument("--machine", default="2 cores", help="what the report says about the machine")
    parser.add_argument("--serve-cost", action="store_true", help="the cost per answered list instead")
    args = parser.parse_args(argv)
    artifacts = args.artifacts or ROOT / "build/bench-feedback"
    if not (artifacts / "current").exists():
        from models.bench_artifact import build

        build(artifacts, n_items=5000, n_users=20_000, log=lambda m: None)
    if args.serve_cost:
        table = serve_cost_table(serve_cost(artifacts))
        print(table)
        if args.out:
            replace_section(args.out, "serve-cost", table)
        return 0
    config = BenchConfig(
        artifacts=artifacts,
        seconds=args.seconds,
        repeats=args.repeats,
        connections=args.connections,
        users=args.users,
    )
    measurements = run(config)
    section = report(config, measurements, machine=args.machine)
    print(section)
    if args.out:
        replace_section(args.out, "bench-feedback", section)
    return 1 if any(m.failed for m in measurements) else 0


if __name__ == "__main__":
    raise SystemExit(main())
