"""Charts for docs/: the training curves of every component, from the training report that
``models.pipeline.run`` returns, and a latency distribution from the benchmark's own
measurements (scripts/bench.py). matplotlib with the Agg backend: files, no display."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

COMPONENTS = ("Mult-VAE", "item autoencoder", "item-item", "blend")


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(reports: Mapping[str, Mapping[str, Any]], out: Path) -> list[list[str]]:
    """One row per training run (name -> report), one panel per component:

    - Mult-VAE: training NLL per epoch, and validation NDCG@100 (right axis), best epoch marked;
    - item autoencoder: reconstruction loss (binary cross-entropy) per epoch;
    - item-item: validation NDCG@100 of each fit of the coordinate search, in the order tried;
    - blend: validation NDCG@100 of each weight vector the coordinate ascent tried.

    A report lays these out as ``pipeline.run`` does: ``components.vae.history``,
    ``components.content.losses``, ``components.ease.grid``, ``blend.grid``; a part it lacks is
    drawn as a note. Returns each row's panel titles, as drawn.
    """
    plt = pyplot()
    fig, axes = plt.subplots(len(reports), 4, figsize=(18, 3.6 * len(reports)), squeeze=False)
    titles = []
    for row, (name, report) in zip(axes, reports.items(), strict=True):
        components = report.get("components", {})
        _vae(row[0], components.get("vae", {}).get("history", []))
        _losses(row[1], components.get("content", {}).get("losses", []))
        _search(row[2], _best_per_fit(components.get("ease", {}).get("grid", [])), label="fit")
        _search(row[3], report.get("blend", {}).get("grid", []), label="weights")
        for ax, component in zip(row, COMPONENTS, strict=True):
            ax.set_title(f"{name}: {component}", fontsize=10)
        titles.append([ax.get_title() for ax in row])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return titles


def _not_recorded(ax: Any) -> None:
    ax.text(0.5, 0.5, "not recorded in this report", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _vae(ax: Any, history: Sequence[Mapping[str, float]]) -> None:
    if not history:
        return _not_recorded(ax)
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["nll"] for h in history], color="tab:blue", label="training NLL")
    ax.set(xlabel="epoch", ylabel="training NLL")
    right = ax.twinx()
    ndcg = [h["val_ndcg@100"] for h in history]
    right.plot(epochs, ndcg, color="tab:orange", label="validation NDCG@100")
    best = int(np.argmax(ndcg))
    right.plot([epochs[best]], [ndcg[best]], "o", color="tab:orange")
    right.set_ylabel("validation NDCG@100")
    ax.legend(handles=ax.get_lines() + right.get_lines()[:1], loc="center right", fontsize=8)
    return None


def _losses(ax: Any, losses: Sequence[float]) -> None:
    if not losses:
        return _not_recorded(ax)
    ax.plot(range(1, len(losses) + 1), losses, color="tab:green")
    ax.set(xlabel="epoch", ylabel="reconstruction loss (BCE)")
    return None


def _best_per_fit(grid: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
    """The item-item grid has one row per (fit, popularity exponent): keep each fit's best."""
    best: dict[tuple[float, ...], dict[str, float]] = {}
    for row in grid:
        key = tuple(v for k, v in row.items() if k not in ("beta", "ndcg@100"))
        if key not in best or row["ndcg@100"] > best[key]["ndcg@100"]:
            best[key] = dict(row)
    return list(best.values())


def _search(ax: Any, tried: Sequence[Mapping[str, Any]], *, label: str) -> None:
    """Validation NDCG@100 of each point a search tried, in order, the chosen one starred."""
    if not tried:
        return _not_recorded(ax)
    ndcg = [row["ndcg@100"] for row in tried]
    ax.plot(range(1, len(ndcg) + 1), ndcg, marker="o", color="tab:purple")
    best = int(np.argmax(ndcg))
    ax.plot([best + 1], [ndcg[best]], "*", color="black", markersize=12)
    shown = {k: v for k, v in tried[best].items() if k != "ndcg@100"}
    chosen = ", ".join(f"{k} {v:g}" if isinstance(v, int | float) else f"{k} {v}" for k, v in shown.items())
    ax.annotate(chosen, (0.02, 0.03), xycoords="axes fraction", fontsize=7)
    ax.set(xlabel=f"{label} tried (in order)", ylabel="validation NDCG@100")
    return None


def latency_distribution(
    runs: Mapping[str, Sequence[float]], out: Path, *, title: str
) -> dict[str, dict[str, float]]:
    """Histogram (log-spaced bins) and CDF of each run's latencies, in seconds, drawn in ms
    with p50 and p99 marked. Returns {run: {"p50", "p95", "p99", "n"}} in ms, as drawn."""
    plt = pyplot()
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(12, 4))
    drawn = {}
    every = np.concatenate([np.asarray(v, dtype=np.float64) for v in runs.values() if len(v)]) * 1000
    bins = np.geomspace(max(every.min(), 1e-3), every.max(), 60)
    for (name, seconds), color in zip(
        runs.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False
    ):
        ms = np.sort(np.asarray(seconds, dtype=np.float64) * 1000)
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        drawn[name] = {"p50": float(p50), "p95": float(p95), "p99": float(p99), "n": float(len(ms))}
        hist.hist(ms, bins=bins, histtype="step", color=color, label=f"{name} (n={len(ms):,})")
        cdf.plot(ms, np.arange(1, len(ms) + 1) / len(ms), color=color, label=name)
        for q, value in (("p50", p50), ("p99", p99)):
            cdf.axvline(value, color=color, linestyle=":" if q == "p50" else "--", linewidth=1)
            cdf.annotate(f"{q} {value:.2f} ms", (value, 0.5 if q == "p50" else 0.99), fontsize=8, color=color)
    hist.set(xscale="log", xlabel="latency (ms, log scale)", ylabel="requests", title="Latency histogram")
    cdf.set(xscale="log", xlabel="latency (ms, log scale)", ylabel="fraction of requests ≤ x", title="CDF")
    hist.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return drawn


def diversity_curves(curves: Mapping[str, Sequence[Mapping[str, float]]], out: Path) -> None:
    """Per dataset, NDCG@10 against intra-list diversity at each ``diversity`` setting."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, rows in curves.items():
        ild = [r["ild@10"] for r in rows]
        ndcg = [r["ndcg@10"] / rows[0]["ndcg@10"] if rows[0]["ndcg@10"] else 0.0 for r in rows]
        (line,) = axes[0].plot(ild, ndcg, marker="o", label=name)
        for r, x, y in zip(rows, ild, ndcg, strict=True):
            label = f"{r['diversity']:g}"
            axes[0].annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        settings, coverage = [r["diversity"] for r in rows], [r["coverage@10"] for r in rows]
        axes[1].plot(settings, coverage, marker="o", color=line.get_color(), label=name)
    axes[0].set(
        xlabel="intra-list diversity of the top 10 (mean 1 - cosine)",
        ylabel="NDCG@10 relative to diversity 0",
        title="accuracy against diversity (labels: setting)",
    )
    axes[1].set(xlabel="diversity setting", ylabel="catalog coverage@10", title="catalog coverage")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
