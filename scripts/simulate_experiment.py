"""A/B experiment simulation: power through the HTTP API and A/A false positives in-process;
writes its section of docs/evaluation.md (method: tools/simulation.py).

    python scripts/simulate_experiment.py [--seeds 20] [--aa-runs 200] [--shoppers 2000]
        [--artifacts DIR] [--out docs/evaluation.md]

Without --artifacts, the small synthetic artifact of scripts/bench_feedback.py
(build/bench-feedback, built the first time). Needs redis-server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.markdown import replace_section  # noqa: E402
from tools.simulation import SimulationConfig, Study, aa_false_positive_rate, http_study, report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, help="artifacts dir (DIR/current)")
    parser.add_argument("--seeds", type=int, default=20, help="A/B experiments through the HTTP API")
    parser.add_argument("--aa-runs", type=int, default=200, help="A/A experiments in-process")
    parser.add_argument("--shoppers", type=int, default=2000)
    parser.add_argument("--out", type=Path, help="write the section to this Markdown file")
    args = parser.parse_args(argv)
    artifacts = args.artifacts or ROOT / "build/bench-feedback"
    if not (artifacts / "current").exists():
        from models.bench_artifact import build

        build(artifacts, n_items=5000, n_users=20_000, log=lambda m: None)
    study = Study(artifacts=artifacts, seeds=args.seeds, aa_runs=args.aa_runs,
                  simulation=SimulationConfig(shoppers=args.shoppers))  # fmt: skip
    aa_rate, _ = aa_false_positive_rate(study.aa_runs, config=study.simulation, seed=1)
    print(f"A/A false-positive rate over {study.aa_runs} runs: {aa_rate:.3f}", flush=True)
    power, _ = aa_false_positive_rate(study.aa_runs, config=study.simulation, seed=2,
                                      lift=1 + study.simulation.shopper.true_lift)  # fmt: skip
    print(f"A/B power in-process over {study.aa_runs} runs: {power:.2f}", flush=True)
    runs = http_study(study, log=lambda line: print(line, flush=True))
    section = report(study, runs, aa_rate, power_in_process=power)
    print(section)
    if args.out:
        replace_section(args.out, "experiment-simulation", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
