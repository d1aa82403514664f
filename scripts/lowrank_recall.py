"""Recall and cost of the low-rank shortlists (app.scoring.ann.LowRankIndex) by rank.

Method: for each index of the artifact's components that is wider than twice the rank,
projections are built as an export builds them (``ann.build_lowrank``, into a temporary
folder) for every rank asked for, and searched with the artifact's shortlist factor. Queries:
the component's typical ones, as the export checks them (``Component.index_queries``: a fixed
sample of the stored user vectors ``[u | 1]`` for the decoder's MIPS, of the index's own rows
otherwise, as ``similar`` asks). Truth is the component's exact index on the same query;
recall@k is the share of the exact top k found, "same" the share of lists identical in
order. CPU is the calling thread's time per search (run with one BLAS thread, pinned, for a
per-request cost).

    taskset -c 0 env OPENBLAS_NUM_THREADS=1 python scripts/lowrank_recall.py \\
        --artifact /work/runs/eval/amazon-beauty/attributes
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.scoring import ann, artifact  # noqa: E402
from app.scoring.recommender import Recommender  # noqa: E402


def timed(index: Any, queries: np.ndarray, k: int) -> tuple[list[np.ndarray], float]:
    found, started = [], time.thread_time_ns()
    for query in queries:
        found.append(index.search(query, k))
    return found, (time.thread_time_ns() - started) / len(queries) / 1e6


def main(argv: list[str] | None = None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--artifact", type=Path, required=True, help="a model folder (its current version)")
    parser.add_argument("--ranks", default="16,32,48,64")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", default="10,50,100")
    args = parser.parse_args(argv)
    loaded = artifact.load(args.artifact)
    lowrank = loaded.manifest.retrieval.lowrank
    shortlist = lowrank.shortlist if lowrank is not None else 3
    components = Recommender(loaded).scorer.components
    ks = [int(k) for k in args.k.split(",")]
    exported = lowrank.ranks if lowrank is not None else {}
    print(f"{args.artifact}: {loaded.manifest.counts.items:,} items, shortlist {shortlist}x, "
          f"{args.queries} queries; the artifact's ranks: {exported or 'none'}")  # fmt: skip
    print("| index | rank | " + " | ".join(f"recall@{k} (min) | same@{k}" for k in ks) + " | CPU ms/search |")
    print("|---|---:|" + "---:|---:|" * len(ks) + "---:|")
    for name, component in components.items():
        for index_name in component.index_names:
            exact = component.indexes[index_name]
            exact = exact.exact if isinstance(exact, ann.LowRankIndex) else exact
            queries = np.asarray(component.index_queries(index_name, args.queries), dtype=np.float32)
            truth, cpu = timed(exact, queries, max(ks))
            row = " | ".join("1.000 | 1.00" for _ in ks)
            print(f"| {name}.{index_name} | exact | {row} | {cpu:.3f} |")
            for rank in (int(r) for r in args.ranks.split(",")):
                with tempfile.TemporaryDirectory() as folder:
                    settings = ann.LowRankSettings(rank=rank, shortlist=shortlist)
                    single = {name: _Only(component, index_name)}
                    if not ann.build_lowrank(Path(folder), single, settings, log=lambda m: None):
                        continue  # not wider than twice the rank
                    rows, basis = (np.load(Path(folder) / f) for f in ann.lowrank_files(name, index_name))
                    index = ann.LowRankIndex(rows, basis, exact, shortlist)
                found, cpu = timed(index, queries, max(ks))
                cells = []
                pairs = list(zip(truth, found, strict=True))
                for k in ks:
                    recalls = [len(np.intersect1d(t[:k], f[:k])) / k for t, f in pairs]
                    same = np.mean([np.array_equal(t[:k], f[:k]) for t, f in pairs])
                    cells.append(f"{np.mean(recalls):.4f} ({min(recalls):.2f}) | {same:.2f}")
                print(f"| {name}.{index_name} | {rank} | " + " | ".join(cells) + f" | {cpu:.3f} |")


class _Only:
    """One index of a component, for build_lowrank."""

    def __init__(self, component: Any, index_name: str) -> None:
        self.component, self.index_names = component, (index_name,)

    def index_vectors(self, name: str) -> np.ndarray:
        return self.component.index_vectors(name)


if __name__ == "__main__":
    main()
