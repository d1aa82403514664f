"""Training at scale, measured: a seeded synthetic shop trained end to end; writes the
"scale" section of docs/scaling.md.

    python scripts/bench_scale.py [--items 1000000] [--users 1000000] [--mean-events 12]
        [--config configs/large.json] [--work build/scale] [--out docs/scaling.md]
        [--test-users 2000] [--json FILE]

Method: scripts/generate_shop.py writes the shop (skipped when WORK already holds one of the
same settings); 10% of the shoppers (at most TEST_USERS) are held out of its log before
anything else (as `make eval` does); scripts/train.py trains the rest as a shop would
(selection on validation users,
refit on all, export with the indexes of its catalog size) in its own process; the table
gives each stage's wall time and the process's peak RSS at its end (the training report in
the manifest), then the artifact is loaded as the server loads it, answers one request, and
ranks the held-out shoppers' hidden items (80% of each one's items as history) through the
serving code: the blend, each component alone and popularity.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.markdown import replace_section  # noqa: E402

if TYPE_CHECKING:
    from models.report import Heldout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--mean-events", type=float, default=12.0)
    parser.add_argument("--config", type=Path, default=ROOT / "configs/large.json")
    parser.add_argument("--work", type=Path, default=ROOT / "build/scale")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/scaling.md")
    parser.add_argument("--test-users", type=int, default=2000, help="held out of training, scored")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)
    shop = args.work / f"shop-{args.items}-{args.users}-{args.mean_events:g}"
    started = time.perf_counter()
    if not (shop / "shop.json").exists():
        run([sys.executable, "scripts/generate_shop.py", "--out", str(shop), "--items", str(args.items),
             "--users", str(args.users), "--mean-events", str(args.mean_events)])  # fmt: skip
    generated = time.perf_counter() - started
    artifacts = args.work / f"artifacts-{args.items}"
    # In a child process: reading the whole log would leave its memory in this one (CPython
    # and pandas keep freed memory), which counts in the tree's peak while training runs.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        train_file, heldout = pool.apply(hold_out, (shop, args.work, args.test_users))
    started = time.perf_counter()
    files = ["--interactions", str(train_file), "--items", str(shop / "items.parquet")]
    tree_peak = run_sampled(
        [sys.executable, "scripts/train.py", *files, "--out", str(artifacts), "--config", str(args.config)]
    )
    trained = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    write_report(args, shop, artifacts, generated, trained, (peak, tree_peak), heldout)
    return 0


def hold_out(shop: Path, work: Path, test_users: int) -> tuple[Path, Heldout]:
    """(the training file without ``test_users`` shoppers, their fold-in and targets)."""
    from models import report
    from models.config import SplitConfig, TrainConfig
    from models.data import load

    dataset = load(shop / "interactions.parquet", shop / "items.parquet")
    # 10% of the shoppers, at most ``test_users``.
    train, heldout = report.hold_out(dataset, TrainConfig(split=SplitConfig(max_heldout_users=test_users)))
    path = work / f"train-{shop.name}-{test_users}.parquet"
    train.interactions.to_parquet(path, index=False)
    print(f"{len(heldout.user_ids):,} shoppers held out of training for the quality check", flush=True)
    return path, heldout


def run_sampled(command: list[str], every_s: float = 1.0) -> float:
    """Run ``command`` like :func:`run`; the peak, in MB, of the summed RSS of this process and
    all its descendants, sampled every ``every_s`` seconds while it runs."""
    print("$", " ".join(command), flush=True)
    child = subprocess.Popen(command, cwd=ROOT)
    peak = 0.0
    while child.poll() is None:
        peak = max(peak, tree_rss_mb(os.getpid()))
        time.sleep(every_s)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, command)
    return peak


def tree_rss_mb(pid: int) -> float:
    """Summed VmRSS of ``pid`` and its descendants, in MB."""
    from tools.server import children

    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
        except FileNotFoundError:  # it ended meanwhile
            continue
        pending += children(current)
    return total / 1024


def run(command: list[str]) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def serve_once(artifacts: Path) -> tuple[float, float, int]:
    """(seconds to load as the server does, seconds for one recommendation, items returned)."""
    from app.scoring import artifact
    from app.scoring.recommender import Recommender

    started = time.perf_counter()
    recommender = Recommender(artifact.load(artifacts))
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    result = recommender.recommend({i: 1.0 for i in range(0, 200, 20)}, k=10)
    return loaded, time.perf_counter() - started, len(result.item_idx)


def write_report(
    args: argparse.Namespace,
    shop: Path,
    artifacts: Path,
    generated: float,
    trained: float,
    peaks: tuple[float, float],
    heldout: Heldout,
) -> None:
    from app.scoring import artifact
    from models.report import served_metrics

    manifest = artifact.read_manifest(artifact.resolve(artifacts))
    config = args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config
    counts = manifest.counts
    stages = manifest.training.get("stages", {})
    loaded, answered, n = serve_once(artifacts)
    started = time.perf_counter()
    quality, _ = served_metrics(artifact.resolve(artifacts), heldout)
    scored = time.perf_counter() - started
    size = sum(f.stat().st_size for f in artifact.resolve(artifacts).iterdir())
    settings = {
        k: int(v) if float(v).is_integer() else v
        for k, v in json.loads((shop / "shop.json").read_text()).items()
    }
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    peak, tree_peak = peaks
    lines = [
        "## Training at scale, measured",
        "",
        f"Command: `python scripts/bench_scale.py --items {args.items} --users {args.users} "
        f"--mean-events {args.mean_events:g} --config {config}` (`make bench-scale`)  ",
        f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, "
        f"Python {platform.python_version()}  ",
        f"Shop: {settings}  ",
        f"Method: {__doc__.split('Method: ', 1)[1].strip()}",
        "",
        f"Generated in {generated:.0f} s (0: already there); trained in {trained / 60:.1f} min, "
        f"peak RSS {peak:,.0f} MB (the training process; this benchmark's process tree, summed "
        f"and sampled every second: {tree_peak:,.0f} MB); {counts.items:,} items, {counts.users:,} shoppers, "
        f"{counts.interactions:,} user-item pairs; artifact {size / 2**30:.2f} GiB "
        f"(retrieval {manifest.retrieval.mode}, approximate indexes: {manifest.retrieval.ann is not None}); "
        f"loaded as served in {loaded:.1f} s, a first recommendation in {answered * 1000:.0f} ms "
        f"({n} items).",
        "",
        "| stage | seconds | peak RSS MB at its end |",
        "|---|---|---|",
        *[f"| {name} | {s['seconds']:.1f} | {s['peak_rss_mb']:,.0f} |" for name, s in stages.items()],
        f"| reading the files, export (arrays, indexes, checksums), the rest | "
        f"{trained - sum(s['seconds'] for s in stages.values()):.1f} | {peak:,.0f} |",
        "",
        f"Quality on {len(heldout.user_ids):,} held-out shoppers, scored as served "
        f"({manifest.retrieval.mode}; {scored:.0f} s):",
        "",
        "| ranking | ndcg@100 | recall@20 | x popularity |",
        "|---|---|---|---|",
        *[
            f"| {name} | {row['ndcg@100']:.4f} | {row['recall@20']:.4f} | "
            f"{row['ndcg@100'] / max(quality['popular']['ndcg@100'], 1e-12):.2f} |"
            for name, row in quality.items()
        ],
        "",
    ]
    text = "\n".join(lines)
    replace_section(args.out, "scale", text)
    print(text)
    if args.json:
        measured = {
            "trained_seconds": trained,
            "peak_rss_mb": peak,
            "tree_peak_rss_mb": tree_peak,
            "stages": stages,
            "quality": quality,
        }
        args.json.write_text(json.dumps(measured, indent=1))


if __name__ == "__main__":
    sys.exit(main())
