"""Compare nearest-neighbour libraries for VAE candidate retrieval (max inner product).

Method: the bench artifact (``models.bench_artifact.build``) gives item embeddings ``e``,
decoder biases ``b`` and user vectors ``u``; base rows are ``[e | b]``, queries ``[u | 1]``
(the VAE retrieval score ``u.e + b``). The exact top 500 (numpy) is the ground truth. Every
index answers one query at a time with k = 500 (the retrieval pool); we report recall@500
and recall@10 against the exact lists, and per-query CPU time of the calling thread
(``time.thread_time_ns``; the process's CPU time is checked to match, so no work hides in
other threads) plus wall p50. Filtered search: random allowed sets of 1% and 10% of the
items (seed 0), recall against the exact top 500 of the allowed set; the per-query filter
object (faiss ID selector, hnswlib mask) is built inside the timed call, as a request would.
Index memory is the size of the serialized index. Everything runs single-threaded.

    pip install hnswlib usearch   # not dependencies of shoprec; a missing one is noted
    nice -n 19 env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        python scripts/ann_compare.py --items 300000 --queries 300
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.scoring.ann import ExactIndex, IVFIndex, IVFSettings, best, build_indexes, ivf_settings  # noqa: E402
from tools.markdown import replace_section  # noqa: E402

K = 500
Search = Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (query, allowed) -> ids, best first
Built = tuple[float, float, int]  # build wall s, build CPU s, index bytes
Row = tuple[str, str, Built, dict, dict]


def load(folder: Path, n_items: int, n_queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Base rows [e | b], queries [u | 1] and the popularity order, building the artifact."""
    current = folder / "current"
    manifest = current / "manifest.json"
    if not manifest.exists() or json.loads(manifest.read_text())["counts"]["items"] != n_items:
        from models.bench_artifact import build

        build(folder, n_items=n_items, n_users=2000, hidden=200, ann=False, log=print)
    emb, bias = np.load(current / "item_emb.npy"), np.load(current / "item_bias.npy")
    users = np.load(current / "user_emb.npy")[:n_queries]
    base = np.ascontiguousarray(np.hstack([emb, bias[:, None]]), dtype=np.float32)
    queries = np.ascontiguousarray(np.hstack([users, np.ones((len(users), 1))]), dtype=np.float32)
    return base, queries, np.load(current / "popular_order.npy")


def truth(base: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None) -> list[np.ndarray]:
    """Exact top K per query (among ``allowed`` when given)."""
    rows = base if allowed is None else base[allowed]
    out = []
    for start in range(0, len(queries), 50):
        for scores in queries[start : start + 50] @ rows.T:
            top = best(scores, K)
            out.append(top if allowed is None else allowed[top])
    return out


def measure(search: Search, queries: np.ndarray, exact: list[np.ndarray], allowed: np.ndarray | None) -> dict:
    """Recall@500, recall@10 and per-query CPU / wall milliseconds of single-query searches."""
    cpu, wall, r500, r10, short = [], [], [], [], 0
    process_start = time.process_time_ns()
    for q, want in zip(queries, exact, strict=True):
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        got = search(q, allowed)
        cpu.append((time.thread_time_ns() - c0) / 1e6)  # this thread only: the contention is not counted
        wall.append((time.perf_counter_ns() - w0) / 1e6)
        short += len(got) < len(want)  # fewer ids than exist: IVF lists too few, hnswlib raised
        r500.append(len(np.intersect1d(got[:K], want)) / len(want))
        r10.append(len(np.intersect1d(got[:10], want[:10])) / min(10, len(want)))
    process = (time.process_time_ns() - process_start) / 1e6
    if process > 1.1 * sum(cpu) + 50:
        print(f"  warning: process CPU {process:.0f} ms > thread CPU {sum(cpu):.0f} ms (other threads?)")
    stats = (np.mean(r500), np.mean(r10), *np.percentile(cpu, [50, 99]), np.percentile(wall, 50), short)
    return dict(zip(("r500", "r10", "cpu50", "cpu99", "wall50", "short"), map(float, stats), strict=True))


def timed(make: Callable[[], Any]) -> tuple[Any, float, float]:
    """The result of ``make()``, its wall and CPU seconds."""
    w, c = time.perf_counter(), time.process_time()
    out = make()
    return out, time.perf_counter() - w, time.process_time() - c


def build_faiss(base: np.ndarray, popular: np.ndarray, folder: Path, head: bool) -> tuple[IVFIndex, Built]:
    """The project's own index (app.scoring.ann), with the exact 1% head or without (head 0)."""
    s = ivf_settings(len(base))
    settings = IVFSettings(s.nlist, s.nprobe, s.head if head else 0)
    component = SimpleNamespace(index_names=["items"], index_vectors=lambda _: base)
    files, wall, cpu = timed(lambda: build_indexes(folder, {"vae": component}, popular, settings, log=print))
    size = sum((folder / f).stat().st_size for f in files)  # type: ignore[attr-defined]
    return IVFIndex(folder, "vae.items", settings), (wall, cpu, size)


def build_hnsw(base: np.ndarray, space: str, tmp: str) -> tuple[Any, Built]:
    import hnswlib

    index = hnswlib.Index(space=space, dim=base.shape[1])
    index.init_index(max_elements=len(base), M=16, ef_construction=100, random_seed=0)
    _, wall, cpu = timed(lambda: index.add_items(base, np.arange(len(base)), num_threads=1))
    index.set_num_threads(1)
    index.save_index(f"{tmp}/hnsw.bin")
    return index, (wall, cpu, os.path.getsize(f"{tmp}/hnsw.bin"))


def build_usearch(base: np.ndarray, metric: str) -> tuple[Any, Built]:
    from usearch.index import Index

    index = Index(ndim=base.shape[1], metric=metric, dtype="f32")  # default connectivity
    _, wall, cpu = timed(lambda: index.add(np.arange(len(base)), base, threads=1))
    return index, (wall, cpu, index.serialized_length)


def mips_to_l2(base: np.ndarray) -> np.ndarray:
    """Rows [x | sqrt(M^2 - |x|^2)]: for queries [q | 0], nearest in L2 = largest inner product."""
    norms = np.linalg.norm(base, axis=1)
    return np.hstack([base, np.sqrt(norms.max() ** 2 - norms**2)[:, None]]).astype(np.float32)


def on_l2(search: Search) -> Search:
    return lambda q, allowed: search(np.append(q, np.float32(0)), allowed)


def faiss_search(index: IVFIndex, nprobe: int) -> Search:
    def search(q: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
        index.nprobe = nprobe
        return index.search(q, K, allowed)

    return search


def hnsw_search(index: Any, ef: int) -> Search:
    def search(q: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
        index.set_ef(ef)
        keep = None
        if allowed is not None:
            mask = np.zeros(index.get_current_count(), dtype=bool)
            mask[allowed] = True
            keep = mask.__getitem__
        try:
            labels, _ = index.knn_query(q, k=K, num_threads=1, filter=keep)
        except RuntimeError:  # hnswlib raises when it finds fewer than k
            return np.zeros(0, dtype=np.int64)
        return labels[0].astype(np.int64)

    return search


def usearch_search(index: Any, expansion: int) -> Search:
    def search(q: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
        index.expansion_search = expansion
        return np.asarray(index.search(q, K, threads=1).keys, dtype=np.int64)

    return search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--artifact", type=Path, default=ROOT / "build/ann-compare")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks.md", help="its 'ann' section")
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(1)
    started = time.perf_counter()
    base, queries, popular = load(args.artifact, args.items, args.queries)
    n = len(base)
    rng = np.random.default_rng(0)
    filters = {share: np.sort(rng.choice(n, int(n * share), replace=False)) for share in (0.01, 0.10)}
    exact = {None: truth(base, queries, None)} | {s: truth(base, queries, a) for s, a in filters.items()}
    rows: list[Row] = []
    notes: list[str] = []

    def run(method: str, setting: str, built: Built, search: Search, filtered: bool = True) -> None:
        result = measure(search, queries, exact[None], None)
        by_filter: dict = dict.fromkeys(filters)  # None: no filter support
        if filtered:
            by_filter = {f: measure(search, queries, exact[f], a) for f, a in filters.items()}
        rows.append((method, setting, built, result, by_filter))
        print(method, setting, result, by_filter, flush=True)

    exact_index = ExactIndex(base)
    run("exact (numpy)", "-", (0.0, 0.0, base.nbytes), lambda q, a: exact_index.search(q, K, a))
    with tempfile.TemporaryDirectory(dir=args.artifact) as tmp:
        s = ivf_settings(n)
        for head in (False, True):
            (folder := Path(tmp) / f"head{int(head)}").mkdir()
            index, built = build_faiss(base, popular, folder, head)
            name = f"faiss IVFFlat nlist {s.nlist}" + (f" + exact head {s.head:,}" if head else "")
            for nprobe in (8, 16, 32, 64, 128, 256):
                setting = f"nprobe {nprobe}" + (" (extra)" if nprobe > 64 else "")
                run(name, setting, built, faiss_search(index, nprobe))
        l2 = mips_to_l2(base)
        for label, lib, metric, transformed in (
            ("hnswlib ip M 16 efC 100", "hnswlib", "ip", False),
            ("usearch ip f32 M 16", "usearch", "ip", False),
            ("(extra) hnswlib l2 M 16 efC 100, MIPS->L2 rows", "hnswlib", "l2", True),
            ("(extra) usearch l2sq f32 M 16, MIPS->L2 rows", "usearch", "l2sq", True),
        ):
            vectors, hnsw = (l2 if transformed else base), lib == "hnswlib"
            try:
                index, built = build_hnsw(vectors, metric, tmp) if hnsw else build_usearch(vectors, metric)
            except Exception as exc:  # install or build failure: report and go on
                notes.append(f"{label}: failed: {exc!r}")
                continue
            for value in (100, 200, 500, 1000):
                search = (hnsw_search if hnsw else usearch_search)(index, value)
                setting = f"{'ef' if hnsw else 'expansion'} {value}" + (" (extra)" if value == 1000 else "")
                run(label, setting, built, on_l2(search) if transformed else search, filtered=hnsw)
            del index
    write(args.out, rows, notes, queries.shape, n, time.perf_counter() - started)


def write(out: Path, rows: list[Row], notes: list[str], qshape: tuple, n: int, seconds: float) -> None:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((x.split(":", 1)[1].strip() for x in lscpu.splitlines() if x.startswith("Model name")), "?")
    libs = ", ".join(f"{p} {_version(p)}" for p in ("numpy", "faiss-cpu", "hnswlib", "usearch"))
    s, (nq, d) = ivf_settings(n), qshape
    lines = [
        "## Which nearest-neighbour index: libraries compared (`scripts/ann_compare.py`)",
        "",
        f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; machine: {cpu}, "
        f"{os.cpu_count()} cores, shared with a training job; all single-threaded under `nice -n 19`",
        "- command: `nice -n 19 env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "
        f"python scripts/ann_compare.py --items {n} --queries {nq}` ({seconds / 60:.1f} min)",
        f"- libraries: {libs}",
        f"- data: `models.bench_artifact.build` (n_users 2000, hidden 200), {n:,} items (production "
        f"target 1M); base rows [item_emb | item_bias] ({d} dims), {nq} queries [user_emb | 1], k = {K}",
        f"- faiss: IndexIVFFlat inner product, nlist {s.nlist} (`ivf_settings`), trained on 64 x nlist "
        f"rows; head: the {s.head:,} most popular items (1%) in an exact flat index, merged (`IVFIndex`)",
        "- hnswlib: space ip, M 16, ef_construction 100. usearch: metric ip, dtype f32 (its default is "
        "bf16), default connectivity. Both search with max(ef, k), so with k = 500 ef 100/200/500 are alike",
        "- CPU ms: thread CPU time of each single-query search (p50/p99); wall p50 for reference. "
        "Index MB: serialized index (exact: the float32 matrix). Build: wall and CPU seconds, 1 thread",
        "- filtered: allowed = random 1% / 10% of items (seed 0); recall@500 vs the exact top 500 of the "
        "allowed set; faiss: IDSelectorBatch; hnswlib: `filter=` callable; usearch: no filter support in "
        "Python API (n/a). 'N short': N queries got fewer ids than min(k, allowed) (faiss: "
        "too few allowed items in the probed lists; hnswlib: raised 'fewer than k', recall 0)",
        "- (extra) rows go beyond the brief: nprobe 128/256, ef/expansion 1000, and graphs built on the "
        "MIPS->L2 reduction (rows [x | sqrt(max|x|^2 - |x|^2)], queries [q | 0], L2 metric)",
        *[f"- note: {x}" for x in notes],
        "",
        "| method | setting | build wall s | build CPU s | index MB | recall@500 | recall@10 | CPU p50 ms "
        "| CPU p99 ms | wall p50 ms | 1%: recall@500 | 1%: CPU p50 ms | 10%: recall@500 | 10%: CPU p50 ms |",
        "|---|---|" + "---:|" * 12,
    ]
    for method, setting, (wall, cpu_s, size), r, by_filter in rows:
        cells = [f"{wall:.1f}", f"{cpu_s:.1f}", f"{size / 1e6:.0f}", f"{r['r500']:.3f}", f"{r['r10']:.3f}"]
        cells += [f"{r['cpu50']:.2f}", f"{r['cpu99']:.2f}", f"{r['wall50']:.2f}"]
        for f in by_filter.values():
            short = f" ({f['short']:.0f} short)" if f and f["short"] else ""
            cells += ["n/a", "n/a"] if f is None else [f"{f['r500']:.3f}{short}", f"{f['cpu50']:.2f}"]
        lines.append(f"| {method} | {setting} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    replace_section(out, "ann", text)
    print(text)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    main()
