"""Approximate indexes of large artifacts (app/scoring/ann.py): built into the version folder
at export, checked at load, memory-mapped, and close to the exact scans they replace."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.scoring import ann, artifact
from app.scoring.ann import (
    BoundedHead,
    DistinctRowsIndex,
    ExactIndex,
    IVFIndex,
    LowRankIndex,
    best,
    best_rows,
    distinct,
    largest,
    member,
)
from app.scoring.components.vae import BiasedExact
from app.scoring.manifest import AnnIndex
from app.scoring.recommender import Recommender, SimilarBy
from app.scoring.rows import histories_matrix

N_ITEMS = 30_000


def bench_artifact(tmp_path_factory, name: str, **settings) -> Path:
    from models.bench_artifact import build

    out = tmp_path_factory.mktemp(name)
    build(out, log=lambda m: None, **settings)
    return out


def refused_when_truncated(folder: Path, copy: Path, file: str) -> None:
    """A copy of the version with ``file`` cut short does not load, and the error names it."""
    import shutil

    shutil.copytree(artifact.resolve(folder), copy)
    path = copy / file
    path.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(artifact.ArtifactError, match=re.escape(file)):
        artifact.load(copy)


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    return bench_artifact(tmp_path_factory, "ann", n_items=N_ITEMS, n_users=2_000, hidden=64, ann=True)


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """VAE vectors of 128 dimensions and more get 8-bit indexes (narrower: float32)."""
    return bench_artifact(tmp_path_factory, "ann-wide", n_items=N_ITEMS, n_users=1_000, hidden=128, ann=True)


def test_the_artifact_carries_its_indexes_with_checksums(large):
    loaded = artifact.load(large, checksums=True)
    settings = loaded.manifest.retrieval.ann
    assert settings is not None and settings.head == N_ITEMS // 100 and settings.nlist >= 256
    assert settings.codec == "sq8"  # new artifacts: 8-bit codes for vectors of 128 dims and more
    faiss_files = sorted(f for f in loaded.manifest.checksums if f.endswith(".faiss"))
    assert faiss_files == sorted(
        f"{c}.{i}.{part}.faiss"
        for c, i in (("vae", "mips"), ("vae", "cosine"), ("content", "content"))
        for part in ("head", "tail")
    )
    recommender = Recommender(loaded)
    for component in recommender.scorer.components.values():
        assert all(isinstance(index, IVFIndex) for index in component.indexes.values())


def test_only_the_biased_index_keeps_a_head(large):
    """The VAE's u e + b favours popular items: its head stays out of the IVF and is scanned
    exactly. The cosine indexes (similar items, content) have no popularity term: their IVF
    holds every item and their head is empty, so a search does not scan it."""
    loaded = artifact.load(large)
    settings = loaded.manifest.retrieval.ann
    assert settings is not None and settings.head_indexes == ["vae.mips"]
    indexes = Recommender(loaded).scorer.components
    mips = indexes["vae"].indexes["mips"]
    assert isinstance(mips, IVFIndex) and mips.tail.ntotal == N_ITEMS - settings.head
    for component, name in (("vae", "cosine"), ("content", "content")):
        index = indexes[component].indexes[name]
        assert isinstance(index, IVFIndex) and index.tail.ntotal == N_ITEMS and index.head.ntotal == 0


def test_a_truncated_index_is_refused_at_load(large, tmp_path):
    refused_when_truncated(large, tmp_path / "copy", "vae.mips.tail.faiss")


def test_ivf_finds_what_the_exact_scans_find(large):
    """Every component index (VAE candidates by [u | 1].[e | b], similar items by cosine,
    content by cosine) through IVF + exact head, against the exact scan it replaces:
    recall of the top 500 on real queries (user vectors, items, history profiles)."""
    loaded = artifact.load(large)
    recommender = Recommender(loaded)
    vae, content = recommender.scorer.components["vae"], recommender.scorer.components["content"]
    exact = {
        "mips": BiasedExact(loaded.arrays["item_emb"], loaded.arrays["item_bias"]),
        "cosine": ExactIndex(loaded.arrays["item_emb"], loaded.arrays["item_norm"]),
        "content": ExactIndex(loaded.arrays["content_emb"]),
    }
    rng = np.random.default_rng(0)
    histories = [rng.choice(N_ITEMS, 10, replace=False) for _ in range(30)]
    queries: dict[str, list[np.ndarray]] = {"mips": [], "cosine": [], "content": []}
    for items in histories:
        matrix = histories_matrix([(items.astype(np.int32), np.ones(10, np.float32))], N_ITEMS)
        queries["mips"].append(np.append(vae.prepare(matrix)[0], np.float32(1.0)))
        queries["content"].append(content.prepare(matrix)[0])
        e = vae.item_vectors(items[:1])[0]
        queries["cosine"].append(e / np.linalg.norm(e))
    for name, component in (("mips", vae), ("cosine", vae), ("content", content)):
        recalls = []
        for query in queries[name]:
            truth = exact[name].search(query, 500)
            found = component.indexes[name].search(query, 500)
            assert len(found) == 500 and len(set(found.tolist())) == 500
            recalls.append(len(np.intersect1d(truth, found)) / 500)
        assert np.mean(recalls) >= 0.9, (name, np.mean(recalls))


def test_the_vae_head_is_scanned_exactly_within_a_bound(large):
    """The IVF head of the VAE's [u | 1].[e | b] index is scanned exactly in blocks of falling
    bias until no later block can reach the n-th best (|u| |e| + b): its answer is the exact
    top n of the head items, filtered too, whether the bound cuts the scan short (the
    artifact's biases) or not (equal biases: every block is read)."""
    loaded = artifact.load(large)
    recommender = Recommender(loaded)
    mips = recommender.scorer.components["vae"].indexes["mips"]
    assert isinstance(mips, IVFIndex) and isinstance(mips.head, BoundedHead)
    emb = np.asarray(loaded.arrays["item_emb"], dtype=np.float64)
    head = ann.head_items(loaded.arrays["popular_order"], loaded.manifest.retrieval.ann.head)
    rng = np.random.default_rng(5)
    outside = np.setdiff1d(np.arange(N_ITEMS), head)[:40]
    for bias in (np.asarray(loaded.arrays["item_bias"], dtype=np.float64), np.full(N_ITEMS, 2.0)):
        bounded = BoundedHead(loaded.arrays["item_emb"], bias.astype(np.float32), head)
        for u in rng.choice(len(loaded.arrays["user_emb"]), 10, replace=False):
            user = np.asarray(loaded.arrays["user_emb"][u], dtype=np.float32)
            scores = emb @ user + bias
            some = np.sort(np.concatenate([head[::3], outside]))
            for n, allowed in ((10, None), (100, None), (len(head) + 5, None), (50, some), (5, outside)):
                pool = head if allowed is None else np.intersect1d(head, allowed)
                truth = np.sort(scores[pool])[::-1][:n]
                found = bounded.search(np.append(user, np.float32(1.0)), n, allowed)
                assert len(found) == len(truth) == len(set(found.tolist()))
                assert np.isin(found, pool).all()
                np.testing.assert_allclose(scores[found], truth, rtol=0, atol=1e-4)


def test_allowed_items_are_searched_through_a_selector(large):
    recommender = Recommender(artifact.load(large))
    index = recommender.scorer.components["content"].indexes["content"]
    allowed = np.arange(0, N_ITEMS, 7, dtype=np.int64)
    query = np.asarray(recommender.scorer.components["content"].unit.take(np.array([5])))[0]
    found = index.search(query, 50, allowed)
    assert len(found) == 50 and np.isin(found, allowed).all()


def test_sq8_indexes_rank_exactly_in_a_quarter_of_the_flat_files(wide, tmp_path):
    """The 8-bit index's answer is the exact index's ranking of the ids it fetched (so the
    order is exact), as close to the exact scan's top n as float32 vectors (the codec of
    artifacts written before), which take four times the bytes."""
    loaded = artifact.load(wide)
    recommender = Recommender(loaded)
    vae = recommender.scorer.components["vae"]
    exact = BiasedExact(loaded.arrays["item_emb"], loaded.arrays["item_bias"])
    settings = ann.IVFSettings(**loaded.manifest.retrieval.ann.model_dump())
    flat_settings = replace(settings, codec="flat")
    ann.build_indexes(
        tmp_path, {"vae": vae}, loaded.arrays["popular_order"], flat_settings, log=lambda m: None
    )
    old = AnnIndex.model_validate({"nlist": settings.nlist, "nprobe": settings.nprobe, "head": settings.head})
    assert old.codec == "flat"  # a manifest written before codecs: float32
    flat = IVFIndex(tmp_path, "vae.mips", ann.IVFSettings(**old.model_dump()), exact)
    size = {f.name: f.stat().st_size for f in tmp_path.iterdir()}
    assert (loaded.path / "vae.mips.tail.faiss").stat().st_size < 0.35 * size["vae.mips.tail.faiss"]
    assert isinstance(vae.indexes["mips"], IVFIndex) and vae.indexes["mips"].exact is not None
    content = recommender.scorer.components["content"].indexes["content"]
    assert isinstance(content, IVFIndex) and content.exact is None  # 64-d: float32
    rng = np.random.default_rng(3)
    recalls = {"sq8": [], "flat": []}
    for u in rng.choice(len(loaded.arrays["user_emb"]), 20, replace=False):
        query = np.append(np.asarray(loaded.arrays["user_emb"][u]), np.float32(1.0))
        truth = exact.search(query, 100)
        found = vae.indexes["mips"].search(query, 100)
        exact_scores = loaded.arrays["item_emb"][found] @ query[:-1] + loaded.arrays["item_bias"][found]
        assert np.all(np.diff(exact_scores) <= 1e-5)  # ranked by the exact score
        recalls["sq8"].append(len(np.intersect1d(truth, found)) / 100)
        recalls["flat"].append(len(np.intersect1d(truth, flat.search(query, 100))) / 100)
    assert np.mean(recalls["sq8"]) >= np.mean(recalls["flat"]) - 0.01 and np.mean(recalls["sq8"]) >= 0.8, (
        recalls
    )


def test_a_wide_ivf_head_is_shortlisted_by_a_projection_that_keeps_its_answers(wide):
    """The exact head of an IVF index wider than twice the rank is scanned through a low-rank
    shortlist when that keeps the recall (the VAE's 129-d MIPS; its 128-d cosine and the 64-d
    content index keep the faiss head), with the same answers as the faiss head, filters kept."""
    loaded = artifact.load(wide, checksums=True)
    lowrank = loaded.manifest.retrieval.lowrank
    assert lowrank is not None and set(lowrank.ranks) == {"vae.mips"}
    projections = sorted(f for f in loaded.manifest.checksums if f.endswith(("lowrank.npy", "basis.npy")))
    assert projections == ["vae.mips.head.basis.npy", "vae.mips.head.lowrank.npy"]
    components = Recommender(loaded).scorer.components
    vae, mips = components["vae"], components["vae"].indexes["mips"]
    assert isinstance(mips, IVFIndex) and isinstance(mips.head, LowRankIndex)
    assert mips.head.basis.shape == (129, lowrank.ranks["vae.mips"])
    assert len(mips.head.items) == loaded.manifest.retrieval.ann.head
    assert not isinstance(vae.indexes["cosine"].head, LowRankIndex)
    assert not isinstance(components["content"].indexes["content"].head, LowRankIndex)
    settings = ann.IVFSettings(**loaded.manifest.retrieval.ann.model_dump())
    faiss_head = IVFIndex(loaded.path, "vae.mips", settings, mips.exact)
    allowed = np.arange(2, N_ITEMS, 5, dtype=np.int64)
    overlaps: dict[str, list[float]] = {"all": [], "filtered": []}
    for query in vae.index_queries("mips", 50):
        found, before = mips.search(query, 100), faiss_head.search(query, 100)
        assert len(found) == 100 and len(set(found.tolist())) == 100
        overlaps["all"].append(len(np.intersect1d(found, before)) / 100)
        found, before = mips.search(query, 50, allowed), faiss_head.search(query, 50, allowed)
        assert len(found) == 50 and np.isin(found, allowed).all()
        overlaps["filtered"].append(len(np.intersect1d(found, before)) / 50)
    assert min(np.mean(o) for o in overlaps.values()) >= 0.99, {k: np.mean(o) for k, o in overlaps.items()}


def test_an_unknown_codec_or_a_bad_rank_is_a_configuration_error():
    from models.config import RetrievalConfig
    from models.errors import ConfigError

    with pytest.raises(ConfigError, match="ann_codec"):
        RetrievalConfig(mode="two_stage", ann_codec="pq").ann(1_000_000)
    for ranks in ({"mips": 32}, {"vae.mips": 0}, {"vae.mips": "32"}):
        with pytest.raises(ConfigError, match="lowrank_ranks"):
            RetrievalConfig(mode="two_stage", lowrank_ranks=ranks).lowrank(20_000)
    with pytest.raises(ConfigError, match="lowrank_min_recall"):
        RetrievalConfig(mode="two_stage", lowrank_min_recall=1.5).lowrank(20_000)


def test_served_recommendations_and_similar_items_through_the_indexes(large):
    recommender = Recommender(artifact.load(large))
    history = {int(i): 1.0 for i in range(100, 110)}
    result = recommender.recommend(history, k=20, exclude=history)
    assert len(result.item_idx) == 20 and not set(result.item_idx.tolist()) & set(history)
    for by in SimilarBy:
        items, scores = recommender.similar(7, k=10, by=by)
        assert len(items) == 10 and 7 not in items.tolist() and np.all(np.diff(scores) <= 1e-6)


def test_prefault_reads_the_index_files_into_the_page_cache(large):
    """faiss maps its files itself: prefault reads them once (counted in /proc/self/io)."""

    def read_bytes() -> int:
        fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
        return int(fields["rchar"])

    loaded = artifact.load(large)
    indexes = sum((loaded.path / f).stat().st_size for f in loaded.manifest.checksums if f.endswith(".faiss"))
    before = read_bytes()
    artifact.prefault(loaded)
    assert read_bytes() - before >= indexes


# -- mid-size catalogs: exact scans shortlisted by a low-rank projection ----------------------

MID_ITEMS = 12_000


@pytest.fixture(scope="module")
def mid(tmp_path_factory):
    return bench_artifact(tmp_path_factory, "lowrank", n_items=MID_ITEMS, n_users=500, hidden=200, ann=False)


def test_mid_size_artifacts_carry_low_rank_projections_of_their_wide_indexes(mid):
    loaded = artifact.load(mid, checksums=True)
    assert loaded.manifest.retrieval.ann is None
    lowrank = loaded.manifest.retrieval.lowrank
    assert lowrank is not None and (lowrank.rank, lowrank.min_recall) == (64, 0.995)
    assert set(lowrank.ranks) == {"vae.mips", "vae.cosine"}
    projections = sorted(f for f in loaded.manifest.checksums if f.endswith(("lowrank.npy", "basis.npy")))
    assert projections == sorted(  # content's 64-d vectors are scanned as they are
        f"vae.{index}.{part}.npy" for index in ("mips", "cosine") for part in ("lowrank", "basis")
    )
    components = Recommender(loaded).scorer.components
    assert {n: type(i) for n, i in components["vae"].indexes.items()} == {
        "mips": LowRankIndex,
        "cosine": LowRankIndex,
    }
    assert isinstance(components["content"].indexes["content"], DistinctRowsIndex)  # an exact scan
    for index, width in (("mips", 201), ("cosine", 200)):  # the manifest says each one's rank
        assert components["vae"].indexes[index].basis.shape == (width, lowrank.ranks[f"vae.{index}"])


def test_each_index_gets_the_lowest_rank_that_keeps_the_wanted_recall(mid, tmp_path):
    """Searched as requests search (LowRankIndex against the exact index, on the component's
    typical queries: stored user vectors for MIPS, item rows for cosine), the chosen rank
    keeps recall@100 >= lowrank.min_recall and the next lower rank tried does not."""
    loaded = artifact.load(mid)
    lowrank = loaded.manifest.retrieval.lowrank
    vae = Recommender(loaded).scorer.components["vae"]

    def recall(index, exact, queries) -> float:
        return float(
            np.mean([len(np.intersect1d(index.search(q, 100), exact.search(q, 100))) / 100 for q in queries])
        )

    for name in vae.index_names:
        chosen, queries = vae.indexes[name], vae.index_queries(name, ann.RECALL_QUERIES)
        assert recall(chosen, chosen.exact, queries) >= lowrank.min_recall - 0.002
        rank = lowrank.ranks[f"vae.{name}"]
        if rank > ann.MIN_RANK:
            lower = ann.LowRankSettings(rank=rank - 16, shortlist=lowrank.shortlist)
            ann.build_lowrank(tmp_path, {"vae": vae}, lower, log=lambda m: None)
            rows, basis = (np.load(tmp_path / f) for f in ann.lowrank_files("vae", name))
            lower_index = LowRankIndex(rows, basis, chosen.exact, lowrank.shortlist)
            assert recall(lower_index, chosen.exact, queries) < lowrank.min_recall + 0.002, name


def test_only_indexes_wider_than_twice_the_rank_are_projected(mid, tmp_path):
    """At rank 32 the VAE's 200-d indexes are projected and content's 64-d one is not (a
    projection to half the width or more saves too little to pay for the shortlist)."""
    components = Recommender(artifact.load(mid)).scorer.components
    settings = ann.LowRankSettings(rank=32, shortlist=3)
    ranks = ann.build_lowrank(tmp_path, components, settings, log=lambda m: None)
    assert ranks == {"vae.mips": 32, "vae.cosine": 32}
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        f"vae.{index}.{part}.npy" for index in ("mips", "cosine") for part in ("lowrank", "basis")
    )
    assert np.load(tmp_path / "vae.mips.basis.npy").shape == (201, 32)
    # an index's own rank holds whatever recall is wanted; the others search up to ``rank``
    settings = ann.LowRankSettings(rank=64, shortlist=3, ranks={"vae.mips": 32}, min_recall=1.0)
    ranks = ann.build_lowrank(tmp_path, components, settings, log=lambda m: None)
    assert ranks["vae.mips"] == 32 and np.load(tmp_path / "vae.mips.basis.npy").shape == (201, 32)
    # an index that no rank up to ``rank`` keeps at the recall wanted stays an exact scan
    # (this MIPS needs 64 for 0.995, so 32 misses it)
    strict = tmp_path / "strict"
    strict.mkdir()
    settings = ann.LowRankSettings(rank=32, shortlist=3, min_recall=0.995)
    assert "vae.mips" not in ann.build_lowrank(strict, components, settings, log=lambda m: None)
    assert not (strict / "vae.mips.lowrank.npy").exists()


def test_a_truncated_projection_is_refused_at_load(mid, tmp_path):
    refused_when_truncated(mid, tmp_path / "copy", "vae.mips.lowrank.npy")


def test_the_low_rank_shortlist_finds_what_the_exact_scan_finds(mid):
    """The decoder's MIPS and cosine through the shortlist, against the exact scans, on user
    vectors of real histories and on items: recall of the top 100, and allowed sets kept."""
    loaded = artifact.load(mid)
    vae = Recommender(loaded).scorer.components["vae"]
    exact = {
        "mips": BiasedExact(loaded.arrays["item_emb"], loaded.arrays["item_bias"]),
        "cosine": ExactIndex(loaded.arrays["item_emb"], loaded.arrays["item_norm"]),
    }
    rng = np.random.default_rng(1)
    allowed = np.arange(3, MID_ITEMS, 5, dtype=np.int64)  # a filter allowing 20%
    recalls: dict[str, list[float]] = {"mips": [], "cosine": [], "mips, filtered": [], "cosine, filtered": []}
    for _ in range(30):
        items = rng.choice(MID_ITEMS, 10, replace=False)
        matrix = histories_matrix([(items.astype(np.int32), np.ones(10, np.float32))], MID_ITEMS)
        e = vae.item_vectors(items[:1])[0]
        for name, query in (("mips", np.append(vae.prepare(matrix)[0], np.float32(1.0))),
                            ("cosine", e / np.linalg.norm(e))):  # fmt: skip
            truth, found = exact[name].search(query, 100), vae.indexes[name].search(query, 100)
            assert len(found) == 100 and len(set(found.tolist())) == 100
            recalls[name].append(len(np.intersect1d(truth, found)) / 100)
            truth, found = (
                exact[name].search(query, 50, allowed),
                vae.indexes[name].search(query, 50, allowed),
            )
            assert len(found) == 50 and np.isin(found, allowed).all()
            recalls[f"{name}, filtered"].append(len(np.intersect1d(truth, found)) / 50)
    assert min(np.mean(r) for r in recalls.values()) >= 0.98, {n: np.mean(r) for n, r in recalls.items()}


def test_the_rank_report_measures_each_projected_index_against_its_exact_scan(mid, capsys):
    """scripts/lowrank_recall.py: a row per index and rank, recall read off real searches."""
    from scripts import lowrank_recall

    lowrank_recall.main(["--artifact", str(mid), "--ranks", "8,64", "--queries", "20", "--k", "100"])
    lines = capsys.readouterr().out.splitlines()
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in lines}
    assert {("vae.mips", "exact"), ("vae.mips", "8"), ("vae.mips", "64"), ("vae.cosine", "64")} <= set(rows)
    recall = {rank: float(rows[("vae.mips", rank)].split("|")[3].split()[0]) for rank in ("8", "64")}
    assert recall["64"] >= 0.98 and recall["8"] < recall["64"], recall
    assert ("content.content", "64") not in rows  # 64 dims: not wider than twice the rank


def test_distinct_is_the_union_of_its_arrays():
    rng = np.random.default_rng(2)
    for sizes in ((), (0,), (5,), (300, 0, 40), (1000, 1000)):
        arrays = [rng.integers(0, 500, size) for size in sizes]
        union = np.unique(np.concatenate([np.zeros(0, np.int64), *arrays])).astype(np.int64)
        assert np.array_equal(distinct(*arrays), union)


def test_member_is_numpys_isin():
    rng = np.random.default_rng(3)
    for n_values, n_of in ((0, 0), (10, 0), (0, 5), (400, 20), (300, 300), (50, 1)):
        values, of = rng.integers(0, 200, n_values), rng.integers(0, 200, n_of)
        assert np.array_equal(member(values, of), np.isin(values, of))


def test_largest_finds_the_n_largest_scores_whatever_their_order():
    rng = np.random.default_rng(4)
    cases = [rng.standard_normal(size).astype(np.float32) for size in (0, 1, 100, 2049, 12_101, 100_000)]
    ramp = np.arange(50_000, dtype=np.float32)
    cases += [ramp, ramp[::-1].copy(), np.repeat(ramp[:500], 100)]  # sorted both ways; each score 100 times
    cases.append(np.where(rng.random(30_000) < 0.001, 1.0, 0.0).astype(np.float32))  # a few ones, ties below
    for scores in cases:
        for n in (1, 10, 50, 500, 5_000, len(scores) + 3):
            expected = np.sort(scores)[::-1][: min(n, len(scores))]
            found = largest(scores, n)
            assert len(np.unique(found)) == len(found) == len(expected)
            assert np.array_equal(np.sort(scores[found])[::-1], expected)
            ranked = best(scores, n)
            assert np.array_equal(scores[ranked], expected)
            if len(scores):
                assert np.array_equal(best_rows(scores[None, :], n)[0], ranked)


def test_equal_rows_are_scanned_once_and_found_as_an_exact_scan_finds_them():
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(60, 8)).astype(np.float32)
    vectors = rows[rng.integers(0, 60, 2000)]  # 2,000 items, 60 distinct rows
    index, exact = DistinctRowsIndex(vectors), ExactIndex(vectors)
    assert len(index.warm()[0]) == 60
    queries = rng.normal(size=(12, 8)).astype(np.float32)
    for n in (1, 10, 45, 300, 2000, 2500):
        for query in queries:
            found = index.search(query, n)
            assert len(np.unique(found)) == len(found) == min(n, len(vectors))
            assert np.allclose(vectors[found] @ query, vectors[exact.search(query, n)] @ query)
            assert np.all(np.diff(vectors[found] @ query) <= 1e-5)  # best first
        batch = index.search_many(queries, n)
        assert all(np.array_equal(batch[i], index.search(q, n)) for i, q in enumerate(queries))
    allowed = np.sort(rng.choice(2000, 50, replace=False))
    assert np.array_equal(index.search(queries[0], 7, allowed), exact.search(queries[0], 7, allowed))


def test_batched_exact_scans_find_what_one_query_at_a_time_finds(monkeypatch):
    import app.scoring.ann as ann

    monkeypatch.setattr(ann, "SCAN_BUDGET", 3 * 700)  # blocks of 3 queries over 700 vectors
    rng = np.random.default_rng(4)
    vectors, norms = (
        rng.normal(size=(700, 16)).astype(np.float32),
        rng.uniform(0.5, 2, 700).astype(np.float32),
    )
    bias = rng.normal(size=700).astype(np.float32)
    queries = rng.normal(size=(10, 16)).astype(np.float32)
    biased = np.hstack([queries, np.ones((10, 1), np.float32)])
    for index, qs in (
        (ExactIndex(vectors), queries),
        (ExactIndex(vectors, norms), queries),
        (BiasedExact(vectors, bias), biased),
    ):
        found = index.search_many(qs, 40)
        assert found.shape == (10, 40)
        assert all(np.array_equal(found[i], index.search(q, 40)) for i, q in enumerate(qs))


def test_the_blend_proposes_candidates_in_batches_as_retrieval_does_per_history(trained):
    """The blend's candidate sets (batched exact scans) are the ones two-stage retrieval
    builds for each validation user alone."""
    from app.scoring.retrieval import Pools, candidates
    from models.blend import CandidateParts, K

    result, _ = trained
    scorer, foldin = result.selection, result.data.val_foldin[:40]
    order = scorer.arrays["popular_order"]
    pools = Pools(per_component=60, popular=20, min_per_component=60)
    parts = CandidateParts(scorer, foldin, order, pools, batch=16)
    assert {"vae", "content"} <= {
        n for n, c in scorer.components.items() if c.candidates_many(foldin[:2], None, 5)
    }
    for u, pool in enumerate(parts.pools):
        row = foldin[u]
        alone = candidates(
            scorer, None, order, row, prepared=scorer.prepare(row), k=K, exclude=set(row.indices.tolist()),
            filters=None, pools=pools, every_component=True,
        )  # fmt: skip
        assert np.array_equal(pool, alone), u
