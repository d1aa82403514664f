"""docs/evaluation.md and its charts from the results of :mod:`models.report`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

METRICS = ("recall@20", "recall@50", "ndcg@10", "ndcg@100", "coverage@10")
REFERENCES = ("popular", "item-knn", "ease (plain)", "als", "mult-vae (paper)")
SERVED = (("vae", "vae (component)"), ("ease", "item-item (component)"), ("content", "content (component)"))


def best_reference(res: dict[str, Any]) -> tuple[str, float]:
    refs = {
        name: res["references"][name]["ndcg@100"] for name in REFERENCES if name in res.get("references", {})
    }
    name = max(refs, key=refs.__getitem__) if refs else "none"
    return name, refs.get(name, float("nan"))


def write_report(results: dict[str, dict[str, Any]], out: Path, *, command: str, machine: str) -> None:
    """Markdown tables + PNG charts beside ``out``; the raw results as JSON beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
    lines = [
        "# Offline evaluation",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}  ",
        f"Date: {time.strftime('%Y-%m-%d')}",
        "",
        "Protocol: strong generalization (Liang et al. 2018). 10% of the users with two or more",
        "items (split seed 20261127) are held out of the data **before** cleaning and training;",
        "the same training command as `scripts/train.py` (selection on 10% validation users, then",
        "every component refitted on all users of the training file) runs on the rest. Each test",
        "user's items (after the same row rules) are split 80% fold-in / 20% targets; fold-in items",
        "are excluded from the ranking and a target item the model does not know counts as a miss.",
        "The served rows are scored by loading the exported artifact with the serving loader and",
        "ranking with the serving scorer (`app/scoring`): they are the served numbers. References",
        "are trained on the same rows, tuned on the same validation users and refitted on all users",
        "(`models/references.py`); item-kNN, EASE and the Mult-VAE score through the serving",
        "components too.",
        "",
    ]
    for name, res in results.items():
        lines += _dataset_section(name, res)
    from tools.markdown import replace_section  # offline only (tools/ is not in the images)

    # Generated between markers: what is written by hand around them ("What we tried") stays.
    replace_section(out, "results", "\n".join(lines))
    _plots(results, out)


def _dataset_section(name: str, res: dict[str, Any]) -> list[str]:
    main = res["attributes"]
    c = main["counts"]
    ref_name, ref_ndcg = best_reference(res)
    lines = [
        f"## {name}",
        "",
        f"Trained and evaluated by `{res.get('command', '')}`.",
        "",
        f"{res['test_users']:,} test users held out. Training file after cleaning: {c['users']:,} users, "
        f"{c['items']:,} items ({c['warm_items']:,} with interactions), "
        f"{c['interactions']:,} user-item pairs; settings chosen with {c['validation_users']:,} "
        f"validation users; removed per rule: {main['dropped']}.",
        f"Blend weights: {_fmt(main['weights'])}; item-item: {_fmt(main['item_item'], skip=('seconds',))}; "
        f"Mult-VAE best epoch {main['vae']['best_epoch']} of {main['vae']['planned_epochs']}; "
        f"training (selection + refit + export) {main['train_seconds']:.0f} s.",
        "",
        "| model | " + " | ".join(METRICS) + f" | ndcg@100 / {ref_name} (best reference) |",
        "|---|" + "---|" * (len(METRICS) + 1),
    ]
    rows = [(n, res.get("references", {}).get(n)) for n in REFERENCES]
    rows += [(label, main["metrics"].get(key)) for key, label in SERVED]
    rows.append(("**served blend**", main["metrics"]["blend"]))
    other = res.get("interactions only")
    if other:
        rows += [(f"{label}, interactions only", other["metrics"].get(key)) for key, label in SERVED[:2]]
        rows.append(("**served blend, interactions only**", other["metrics"]["blend"]))
    for label, row in rows:
        if row:
            ratio = f"{row['ndcg@100'] / ref_ndcg:.3f}" if ref_name != "none" else "no references run"
            lines.append(f"| {label} | " + " | ".join(f"{row[m]:.4f}" for m in METRICS) + f" | {ratio} |")
    lines.append("")
    if "retrieval" in res:
        lines += _retrieval_section(res["retrieval"])
    if "rare_items" in res:
        lines += _rare_section(res["rare_items"], c, main["metrics"]["blend"]["ndcg@100"])
    if "cold_start" in res:
        lines += _cold_section(res["cold_start"])
    if "diversity" in res:
        lines += _diversity_section(res["diversity"])
    lines += [
        "Time and peak memory per stage (served model, with attributes):",
        "",
        "| stage | seconds | peak RSS MB |",
        "|---|---|---|",
        *(f"| {s} | {v['seconds']:.1f} | {v['peak_rss_mb']:,.0f} |" for s, v in main["stages"].items()),
        "",
    ]
    return lines


def _rare_section(rare: dict[str, Any], counts: dict[str, int], ndcg: float) -> list[str]:
    before, after, old = rare["before"], rare["after"], rare["before"].get("counts", {})
    return [
        f"Rare items: {int(after['targets']):,} test targets are items with 1-4 interactions in the "
        "training file. HR@100 on them:",
        "",
        "| cleaning | users kept | items kept | rare-target HR@100 | blend ndcg@100 |",
        "|---|---|---|---|---|",
        f"| minimum counts 5 (before) | {old.get('users', 0):,} | {old.get('items', 0):,} | "
        f"{before['hr@100']:.4f} | {before['ndcg@100']:.4f} |",
        f"| minimum counts 1 (now) | {counts['users']:,} | {counts['items']:,} | {after['hr@100']:.4f} | "
        f"{ndcg:.4f} |",
        "",
    ]


def _retrieval_section(rows: dict[str, Any]) -> list[str]:
    pools = rows.get("pools", {})
    lines = [
        "Two-stage serving (candidates, then exact re-ranking) against exhaustive scoring of every "
        f"item, both one request per test user on the served artifact; pools {pools}:",
        "",
        "| filter | NDCG@100 exhaustive | NDCG@100 two-stage | ratio | top-10 overlap (k=100) "
        "| top-10 overlap (k=10 requests) | lists as long |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        if name == "pools":
            continue
        ex, ts = row["ndcg@100 exhaustive"], row["ndcg@100 two-stage"]
        lines.append(
            f"| {name} | {ex:.4f} | {ts:.4f} | {ts / ex if ex else float('nan'):.3f} | "
            f"{row['overlap@10']:.3f} | {_number(row.get('overlap@10, k=10'))} | {row['full lists']:.0%} |"
        )
    return [*lines, ""]


def _cold_section(cs: dict[str, Any]) -> list[str]:
    lines = [
        f"Cold start: {int(cs['_users']['cold_items'])} items held out of training, ranked among "
        f"themselves for {int(cs['_users']['n'])} test users who bought some.",
        "",
        "| ranking of unseen items | recall@10 | ndcg@10 | recall@20 |",
        "|---|---|---|---|",
    ]
    for model, row in cs.items():
        if not model.startswith("_"):
            lines.append(
                f"| {model} | "
                + " | ".join(f"{row[m]:.4f}" for m in ("recall@10", "ndcg@10", "recall@20"))
                + " |"
            )
    return [*lines, ""]


def _diversity_section(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "Diversity (`diversity` on a request: maximal marginal relevance over the collaborative item "
        "vectors among the 50 best items; `models/diversity_eval.py`), one request per test user "
        "on the served artifact; plotted in `diversity.png`:",
        "",
        "| diversity | ndcg@10 | recall@10 | intra-list diversity | categories in top 10 | coverage@10 |",
        "|---|---|---|---|---|---|",
    ]
    categorised = any(row["categories@10"] for row in rows)  # Amazon's files name none
    for row in rows:
        categories = f"{row['categories@10']:.2f}" if categorised else "no categories"
        lines.append(
            f"| {row['diversity']:.1f} | {row['ndcg@10']:.4f} | {row['recall@10']:.4f} | "
            f"{row['ild@10']:.3f} | {categories} | {row['coverage@10']:.3f} |"
        )
    return [*lines, ""]


def _fmt(values: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    return ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items() if k not in skip
    )


def _plots(results: dict[str, dict[str, Any]], out: Path) -> None:
    from models import plots

    reports = {name: res["attributes"]["training_report"] for name, res in results.items()}
    plots.training_curves(reports, out.with_name("training_curves.png"))
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        bars = {n: res.get("references", {}).get(n, {}).get("ndcg@100") for n in REFERENCES}
        bars["served"] = res["attributes"]["metrics"]["blend"]["ndcg@100"]
        if res.get("interactions only"):
            bars["served (no attr.)"] = res["interactions only"]["metrics"]["blend"]["ndcg@100"]
        shown = {k: v for k, v in bars.items() if v is not None}
        colors = ["#1f77b4" if k.startswith("served") else "#999999" for k in shown]
        ax.bar(list(shown), list(shown.values()), color=colors)
        ax.set(title=f"{name}: test NDCG@100")
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(out.with_name("metrics.png"), dpi=110)
    plt.close(fig)
    curves = {name: res["diversity"] for name, res in results.items() if res.get("diversity")}
    if curves:
        plots.diversity_curves(curves, out.with_name("diversity.png"))


def _number(value: float | None) -> str:
    """A ratio, or "-" for a result written before the column existed."""
    return "-" if value is None else f"{value:.3f}"
