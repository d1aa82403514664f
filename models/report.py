"""The evaluation report: every model on the same split, scored through the served artifact,
plus baselines, a cold-start experiment, charts and a Markdown table."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from app.scoring import artifact
from app.scoring.scorer import Scorer, top_k
from models import ease as ease_model
from models import plots
from models.config import TrainConfig
from models.data import Dataset, load
from models.evaluation import evaluate_item_item, evaluate_scorer, evaluate_static
from models.metrics import ndcg_at_k, recall_at_k
from models.pipeline import Log, TrainResult, run

METRICS = ("recall@20", "recall@50", "ndcg@10", "ndcg@100", "coverage@10")
MODELS = ("popular", "item-knn", "ease (plain)", "ease", "vae", "content", "blend")


@dataclass(frozen=True)
class Source:
    name: str
    interactions: str
    items: str | None
    fmt: str


SOURCES = {
    "online-retail": Source("online-retail", "online-retail/online_retail.parquet", None, "online-retail"),
    "amazon-beauty": Source(
        "amazon-beauty",
        "amazon-beauty/Beauty.txt",
        "amazon-beauty/Beauty_item2attributes.json",
        "s3rec",
    ),
    "amazon-sports": Source(
        "amazon-sports",
        "amazon-sports/Sports_and_Outdoors.txt",
        "amazon-sports/Sports_and_Outdoors_item2attributes.json",
        "s3rec",
    ),
}


def load_source(source: Source, data_dir: Path) -> Dataset:
    items = data_dir / source.items if source.items else None
    return load(data_dir / source.interactions, items, fmt=source.fmt)


def served_metrics(version_dir: Path) -> dict[str, dict[str, float]]:
    """Test metrics of an exported artifact, loaded by the serving loader and scored by the
    serving scorer: each component alone, the blend as served, and popularity."""
    loaded = artifact.load(version_dir)
    a = loaded.arrays
    n_items = a["item_emb"].shape[0]
    foldin = _csr(a["test_foldin_indptr"], a["test_foldin_items"], a["test_foldin_weights"], n_items)
    target = _csr(a["test_target_indptr"], a["test_target_items"], None, n_items)
    weights = loaded.manifest["blend_weights"]
    scorer = Scorer(a, weights=weights)
    return {
        "popular": evaluate_static(np.asarray(a["popularity"]), foldin, target),
        "ease": evaluate_scorer(scorer, foldin, target, {"ease": 1.0}),
        "vae": evaluate_scorer(scorer, foldin, target, {"vae": 1.0}),
        "content": evaluate_scorer(scorer, foldin, target, {"content": 1.0}),
        "blend": evaluate_scorer(scorer, foldin, target),
    }


def evaluate_dataset(
    dataset: Dataset, config: TrainConfig, *, work_dir: Path, log: Log, cold_start: bool
) -> dict[str, Any]:
    """Train, export, evaluate the served artifact, add baselines (and the cold-start run)."""
    t0 = time.perf_counter()
    result = run(dataset, config, out_dir=work_dir, log=log)
    seconds = time.perf_counter() - t0
    assert result.version_dir is not None
    metrics = served_metrics(result.version_dir)
    split = result.split
    knn = ease_model.item_knn(split.train, neighbors=100)
    metrics["item-knn"] = evaluate_item_item(knn, split.test_foldin, split.test_target)
    # Plain EASE (no attributes), lambda tuned on validation: the baseline to beat.
    plain = [row for row in result.report["ease"]["grid"] if row["alpha"] == 0.0]
    lam = max(plain, key=lambda row: row["ndcg@100"])["lambda"]
    b = ease_model.fit_ease(ease_model.gram(split.train), lam, warm=split.warm)
    plain_ease = ease_model.sparsify(b, config.ease.neighbors)
    metrics["ease (plain)"] = evaluate_item_item(plain_ease, split.test_foldin, split.test_target)
    history = result.report["vae"]["history"]
    out: dict[str, Any] = {
        "metrics": metrics,
        "counts": result.report["counts"],
        "dropped": result.report["cleaning"]["dropped"],
        "weights": result.weights,
        "blend_grid": result.report["blend"]["grid"],
        "ease": {k: v for k, v in result.report["ease"].items() if k != "grid"},
        "ease_grid": result.report["ease"]["grid"],
        "vae_history": history,
        "item_ae_losses": result.report["item_autoencoder"]["losses"],
        "vae_best_epoch": result.report["vae"]["best_epoch"],
        "vae_seconds_per_epoch": result.report["vae"]["seconds"] / max(1, len(history)),
        "train_seconds": seconds,
        "artifact": str(result.version_dir),
    }
    if cold_start:
        out["cold_start"] = cold_start_experiment(dataset, config, result, log=log)
    return out


def cold_start_experiment(
    dataset: Dataset, config: TrainConfig, warm_result: TrainResult, *, log: Log
) -> dict[str, dict[str, float]]:
    """Hold 10% of items out of training entirely, then rank only those items for test
    users (history: their other items) by: the content->CF map, the content profile,
    popularity (from the full data: an oracle no live system has) and random order."""
    rng = np.random.default_rng(config.split.seed)
    warm_items = [i for i, w in zip(warm_result.split.item_ids, warm_result.split.warm, strict=True) if w]
    cold = frozenset(rng.choice(warm_items, size=max(1, len(warm_items) // 10), replace=False).tolist())
    log(f"cold start: {len(cold):,} items held out of training")
    result = run(dataset, config, log=log, cold_items=cold)
    split, scorer = result.split, result.scorer
    is_cold = np.isin(np.asarray(split.item_ids, dtype=object), list(cold))
    histories = split.histories[split.test_users]
    foldin = histories.multiply(sp.csr_matrix((~is_cold)[None, :].astype(np.float32))).tocsr()
    target = histories.multiply(sp.csr_matrix(is_cold[None, :].astype(np.float32))).tocsr()
    rows = np.flatnonzero((np.diff(target.indptr) > 0) & (np.diff(foldin.indptr) > 0))
    foldin, target = foldin[rows], target[rows]
    target.data[:] = 1.0
    exclude = np.broadcast_to(~is_cold, (len(rows), split.n_items))
    full_popularity = np.asarray((split.histories > 0).sum(axis=0), dtype=np.float32).ravel()
    candidates = {
        "content->cf map": scorer.components(foldin, only=("vae",))["vae"],
        "content profile": scorer.components(foldin, only=("content",))["content"],
        "popularity (oracle)": np.tile(full_popularity, (len(rows), 1)),
        "random": rng.random((len(rows), split.n_items), dtype=np.float32),
    }
    out = {}
    for name, scores in candidates.items():
        ranked = top_k(np.array(scores, dtype=np.float32), 20, exclude=exclude)
        out[name] = {
            "recall@10": float(recall_at_k(ranked, target, 10).mean()),
            "ndcg@10": float(ndcg_at_k(ranked, target, 10).mean()),
            "recall@20": float(recall_at_k(ranked, target, 20).mean()),
        }
        log(f"cold start {name}: {out[name]}")
    out["_users"] = {"n": float(len(rows)), "cold_items": float(len(cold))}
    return out


def write_report(results: dict[str, dict[str, Any]], out: Path, *, command: str, machine: str) -> None:
    """Markdown tables + PNG charts beside ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.with_suffix(".json")).write_text(json.dumps(results, indent=1, default=float))
    lines = [
        "# Offline evaluation",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}  ",
        f"Date: {time.strftime('%Y-%m-%d')}",
        "",
        "Protocol: strong generalization (Liang et al. 2018), split seed 20261127, 10% of users",
        "for validation and 10% for test, 80% of each held-out user's items as fold-in, 20% as",
        "targets; fold-in items excluded from the ranking. All rows but item-kNN are scored by",
        "loading the exported artifact with the serving loader and ranking with the serving",
        "scorer (`app/scoring`), i.e. the numbers are the served numbers.",
        "",
    ]
    for name, res in results.items():
        c = res["counts"]
        lines += [
            f"## {name}",
            "",
            f"Trained and evaluated by `{res.get('command', command)}`.",
            "",
            f"{c['users']:,} users ({c['train_users']:,} train / {c['validation_users']:,} validation / "
            f"{c['test_users']:,} test), {c['items']:,} items, {c['interactions']:,} interactions after "
            f"cleaning; rows dropped per rule: {res['dropped']}.",
            f"Blend weights (validation): {res['weights']}; EASE λ={res['ease']['lambda']:g}, "
            f"attribute weight α={res['ease']['alpha']:g}. Mult-VAE best epoch {res['vae_best_epoch']}, "
            f"{res['vae_seconds_per_epoch']:.1f} s/epoch; whole training {res['train_seconds']:.0f} s.",
            "",
            "| model | " + " | ".join(METRICS) + " |",
            "|---|" + "---|" * len(METRICS),
        ]
        for model in MODELS:
            row = res["metrics"].get(model)
            if row:
                lines.append(f"| {model} | " + " | ".join(f"{row[m]:.4f}" for m in METRICS) + " |")
        if "cold_start" in res:
            cs = res["cold_start"]
            lines += [
                "",
                f"Cold start: {int(cs['_users']['cold_items'])} items held out of training, ranked among "
                f"themselves for {int(cs['_users']['n'])} test users.",
                "",
                "| ranking of unseen items | recall@10 | ndcg@10 | recall@20 |",
                "|---|---|---|---|",
            ]
            for model, row in cs.items():
                if not model.startswith("_"):
                    values = " | ".join(f"{row[m]:.4f}" for m in ("recall@10", "ndcg@10", "recall@20"))
                    lines.append(f"| {model} | {values} |")
        lines.append("")
    out.write_text("\n".join(lines))
    _plots(results, out)


def _plots(results: dict[str, dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots.training_curves(
        {name: training_report(res) for name, res in results.items()}, out.with_name("training_curves.png")
    )

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        models = [m for m in MODELS if m in res["metrics"]]
        ax.bar(models, [res["metrics"][m]["ndcg@100"] for m in models])
        ax.set(title=f"{name}: NDCG@100 (test)")
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(out.with_name("metrics.png"), dpi=110)
    plt.close(fig)


def training_report(res: dict[str, Any]) -> dict[str, Any]:
    """The training-report parts of one dataset's results, laid out as ``pipeline.run``'s
    report (what ``plots.training_curves`` draws); results of runs before the item
    autoencoder's losses were kept have none."""
    return {
        "vae": {"history": res["vae_history"]},
        "item_autoencoder": {"losses": res.get("item_ae_losses", [])},
        "ease": {"grid": res.get("ease_grid", [])},
        "blend": {"grid": res.get("blend_grid", [])},
    }


def _csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray | None, n_items: int) -> sp.csr_matrix:
    values = np.ones(len(indices), np.float32) if data is None else np.asarray(data)
    return sp.csr_matrix((values, np.asarray(indices), np.asarray(indptr)), shape=(len(indptr) - 1, n_items))
