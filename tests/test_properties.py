"""Properties of the scoring path the API calls (hypothesis): session and user
recommendations and similar items, on the trained synthetic shop as published and after
catalog changes (deleted, hidden, changed and new items with missing fields).

Histories and exclusions are built by the code the API calls (app.scoring.history); the
expected exclusions and candidates are computed independently from the raw inputs and the
catalog rows, as the API reports them.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.events import Event
from app.schemas import ItemUpdate
from app.scoring import ann, artifact, history
from app.scoring.history import ExcludeHistory, History
from app.scoring.recommender import Filters, Recommendation, Recommender
from app.scoring.retrieval import Pools
from app.scoring.rows import histories_matrix
from app.store.feedback import RecentEvent

PROPERTY = settings(max_examples=100, deadline=None, database=None)


def _catalog_updates(loaded: artifact.Artifact) -> dict:
    """Deletions, hidden items, changed items and new items, as the catalog API stores them."""
    items = loaded.items
    updates: dict = {item["item_id"]: None for item in items[:5]}
    for item in items[5:10]:
        fields = {k: item[k] for k in ("title", "category", "brand", "price")}
        updates[item["item_id"]] = ItemUpdate(**fields, available=False).model_dump()
    for n, item in enumerate(items[10:16]):
        changed = {"title": item["title"], "brand": item["brand"], "price": 19.99 if n % 2 else None}
        updates[item["item_id"]] = ItemUpdate(**changed, category=None if n < 3 else "mugs").model_dump()
    for n in range(8):
        new = {
            "title": f"Oak new thing {n}",
            "category": "mugs" if n % 2 else None,
            "price": 7.5 if n else None,
        }
        updates[f"NEW-{n}"] = ItemUpdate(**new).model_dump()
    return updates


# Two-stage serving with pools far smaller than this 300-item shop, so that retrieval, its
# filters and its fill-up are exercised (a real catalog has 100k items and pools of 500).
SMALL_POOLS = Pools(per_component=20, popular=5, exact_limit=30, max_oversample=4)


@pytest.fixture(
    scope="module",
    params=[
        ("published", "exhaustive"),
        ("catalog_changed", "exhaustive"),
        ("published", "two_stage"),
        ("catalog_changed", "two_stage"),
        ("catalog_changed", "two_stage_lowrank"),
    ],
    ids=lambda p: "-".join(p),
)
def recommender(request, artifacts_dir, tmp_path_factory) -> Recommender:
    """Built as ``app.registry`` builds it: the loaded artifact plus the stored catalog changes
    (``two_stage_lowrank``: every wide index shortlisted by a rank-8 projection)."""
    state, mode = request.param
    loaded = artifact.load(artifacts_dir)
    updates = {} if state == "published" else _catalog_updates(loaded)
    two_stage = mode.startswith("two_stage")
    recommender = Recommender(
        loaded, mode="two_stage" if two_stage else mode, pools=SMALL_POOLS if two_stage else None
    )
    if mode == "two_stage_lowrank":
        folder, settings = tmp_path_factory.mktemp("lowrank"), ann.LowRankSettings(rank=8, shortlist=2)
        ranks = ann.build_lowrank(folder, recommender.scorer.components, settings, log=lambda m: None)
        assert ranks, "the test model's VAE is wider than 16"
        files = {path.name for path in folder.iterdir()}
        ann.attach_lowrank(recommender.scorer.components, folder, settings, files)
    recommender.apply_changes(updates)
    recommender.rows = catalog_rows(recommender)  # type: ignore[attr-defined]
    return recommender


def catalog_rows(rec: Recommender) -> list[dict]:
    """Every item the recommender holds, as the catalog API reports it (deleted ones marked)."""
    return [{**rec.catalog.record(i), "deleted": rec.catalog.is_deleted(i)} for i in range(rec.n_items)]


def index_of(rec: Recommender) -> dict[str, int]:
    """Ids to indices, deleted items included: they still count in a history."""
    return {row["item_id"]: i for i, row in enumerate(rec.rows)}


# -- strategies ------------------------------------------------------------------------
def item_ids(rec: Recommender) -> st.SearchStrategy[str]:
    """Mostly catalog ids (deleted ones included), sometimes ids the model never saw."""
    known = st.sampled_from([item["item_id"] for item in rec.rows])
    return st.one_of(known, known, known, st.text(min_size=1, max_size=12))


def filters(rec: Recommender) -> st.SearchStrategy[Filters | None]:
    def names(field: str) -> st.SearchStrategy[list[str] | None]:
        values = sorted({item[field] for item in rec.rows if item.get(field)})
        name = st.one_of(st.sampled_from(values), st.text(min_size=1, max_size=8))
        return st.none() | st.lists(name, max_size=100)  # the schema's maximum

    prices = sorted({item["price"] for item in rec.rows if item.get("price") is not None})
    # Bounds at and next to catalog prices, where a filter is easiest to get wrong.
    near = st.tuples(st.sampled_from(prices), st.sampled_from([-1e-6, -1e-7, 0.0, 1e-7, 1e-6]))
    bound = st.one_of(
        st.none(),
        near.map(lambda pair: max(pair[0] + pair[1], 0.0)),
        near.map(lambda pair: max(pair[0] * (1 + pair[1]), 0.0)),
        st.floats(0, 2 * prices[-1], allow_nan=False),
    )

    def build(category, brand, low, high) -> Filters:
        if low is not None and high is not None and low > high:  # the schema refuses it
            low, high = high, low
        return Filters.of(category, brand, low, high)

    return st.none() | st.builds(build, names("category"), names("brand"), bound, bound)


k_values = st.integers(1, 1000)  # the API's range; the shop has ~300 items


# -- the oracle ------------------------------------------------------------------------
def matches(item: dict, f: Filters | None) -> bool:
    """A catalog row against a filter, on the values the API returns."""
    if item.get("available", True) is False:
        return False
    if f is None:
        return True
    if f.category is not None and item.get("category") not in f.category:
        return False
    if f.brand is not None and item.get("brand") not in f.brand:
        return False
    price = item.get("price")
    if (f.min_price is not None or f.max_price is not None) and price is None:
        return False
    if f.min_price is not None and price < f.min_price:
        return False
    return f.max_price is None or price <= f.max_price


def check(
    rec: Recommender,
    built: History,
    *,
    k: int,
    policy: ExcludeHistory,
    exclude: set[int],
    hidden: set[int],
    f: Filters | None,
    explain: bool = False,
) -> Recommendation:
    """Call ``recommend`` as the API does (twice) and assert every property of its result.

    hidden: the history items the policy must hide, computed by the test from the raw inputs.
    """
    history = built.weights
    before = dict(history)

    def call() -> Recommendation:
        return rec.recommend(
            history,
            k=k,
            exclude=built.excluded(policy) | exclude,
            filters=f,
            explain=explain,
            user_vector=built.user_vector,
        )

    result, again = call(), call()
    assert history == before, "recommend must not change its input"
    ids = result.item_idx.tolist()
    candidates = {i for i, item in enumerate(rec.rows) if matches(item, f)} - exclude - hidden
    assert len(ids) == len(set(ids)), "duplicates"
    assert set(ids) <= candidates, f"excluded, hidden, unavailable or filtered out: {set(ids) - candidates}"
    assert len(ids) == min(k, len(candidates)), "an item was excluded that the policy keeps"
    signal = {i for i, w in history.items() if w > 0}  # weight 0 (a 1-star rating): seen, no signal
    assert result.strategy == ("personalized" if signal else "popular")
    scores = result.scores
    assert scores.dtype == np.float32 and len(scores) == len(ids)
    assert np.all(np.isfinite(scores)) and np.all(np.diff(scores) <= 0), "best first"
    # Deterministic, and no state kept between calls.
    assert np.array_equal(result.item_idx, again.item_idx)
    assert np.array_equal(result.scores, again.scores)
    assert result.because == again.because
    if explain and signal:
        assert result.because is not None and len(result.because) == len(ids)
        names = {rec.rows[i]["item_id"] for i in signal}
        assert all(because and set(because) <= names for because in result.because)
    if rec.mode == "two_stage":  # small pools: the best items may not be among the candidates
        return result
    # The k best candidates: the unfiltered ranking restricted to the candidates (scores
    # compared rather than ids, so ties may come in any order).
    full = rec.recommend(history, k=rec.n_items, user_vector=built.user_vector)
    best = [s for i, s in zip(full.item_idx.tolist(), full.scores, strict=True) if i in candidates][:k]
    assert np.array_equal(scores, np.array(best, dtype=np.float32))
    if built.user_vector is not None:  # the stored vector is the fold-in of this very history
        folded = rec.recommend(history, k=rec.n_items)
        assert np.allclose(np.sort(full.scores), np.sort(folded.scores), atol=1e-3)
    return result


def weight_of(rec: Recommender, event: Event, value: float | None) -> float:
    """The weight the model's manifest gives an event (low ratings and impressions: 0)."""
    if event == Event.rating and value is not None and value < rec.rating_threshold:
        return 0.0
    return float(rec.artifact.manifest.events.weights.get(event.value, 0.0))


policies = st.sampled_from(list(ExcludeHistory))


# -- properties ------------------------------------------------------------------------
@PROPERTY
@given(data=st.data())
def test_session_recommendations(recommender, data):
    """POST /v1/recommendations with a session's items, standing for one event type."""
    rec = recommender
    items = data.draw(st.lists(item_ids(rec), max_size=30), label="items")
    event = data.draw(st.sampled_from(list(Event)), label="items_event")
    policy = data.draw(policies, label="exclude_history")
    excluded = data.draw(st.lists(item_ids(rec), max_size=20), label="exclude")
    built = history.build(rec, session=items, session_event=event)
    index = index_of(rec)
    assert built.unknown == list(dict.fromkeys(i for i in items if i not in index))
    known = {index[i] for i in items if i in index}
    weight = weight_of(rec, event, None)
    assert built.weights == dict.fromkeys(known, weight)
    assert built.user_vector is None
    owns = event in (Event.purchase, Event.rating)
    hidden = {ExcludeHistory.seen: known, ExcludeHistory.purchased: known if owns else set()}.get(
        policy, set()
    )
    check(
        rec,
        built,
        k=data.draw(k_values, label="k"),
        policy=policy,
        exclude={index[i] for i in excluded if i in index},
        hidden=hidden,
        f=data.draw(filters(rec), label="filters"),
        explain=data.draw(st.booleans(), label="explain"),
    )


@PROPERTY
@given(data=st.data())
def test_user_recommendations(recommender, data):
    """GET /v1/users/{id}/recommendations: training history, live events, user vector."""
    rec = recommender
    user = data.draw(st.sampled_from(rec.artifact.users) | st.text(min_size=1, max_size=12), label="user")
    value = st.none() | st.floats(1, 5)
    events = st.lists(st.tuples(item_ids(rec), st.sampled_from(list(Event)), value), max_size=20)
    recent = [
        RecentEvent(item, event, 5.0 if event == Event.rating and v is None else v, 0.0)
        for item, event, v in data.draw(events, label="recent")
    ]
    policy = data.draw(policies, label="exclude_history")
    built = history.build(rec, user_id=user, live=recent)
    idx, weights = rec.training_history(user)
    known_user = rec.user_index(user) is not None
    assert known_user == (len(idx) > 0)
    trained = dict(zip(idx.tolist(), weights.tolist(), strict=True))
    index = index_of(rec)
    live = [(index[e.item_id], e) for e in recent if e.item_id in index]
    seen = set(trained) | {i for i, _ in live}
    assert set(built.weights) == seen
    purchase = weight_of(rec, Event.purchase, None)
    owned = {i for i, w in trained.items() if w >= purchase}
    owned |= {i for i, e in live if e.event in (Event.purchase, Event.rating)}
    assert built.owned == owned
    # The stored vector is used exactly when no live event outweighs the training history.
    raised = any(weight_of(rec, Event(e.event), e.value) > trained.get(i, 0.0) for i, e in live)
    assert (built.user_vector is not None) == (known_user and not raised)
    hidden = {ExcludeHistory.seen: seen, ExcludeHistory.purchased: owned}.get(policy, set())
    check(
        rec,
        built,
        k=data.draw(k_values, label="k"),
        policy=policy,
        exclude=set(),
        hidden=hidden,
        f=data.draw(filters(rec), label="filters"),
        explain=data.draw(st.booleans(), label="explain"),
    )


@settings(PROPERTY, max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1000, 3000), unknown_share=st.floats(0, 0.5))
def test_thousands_of_history_items(recommender, seed, size, unknown_share):
    """Long histories with repeats and unknown ids (drawn from a seed: hypothesis's own
    lists stay small)."""
    rec = recommender
    rng = np.random.default_rng(seed)
    known = np.array([item["item_id"] for item in rec.rows])
    ids = rng.choice(known, size=size).astype(object)
    strangers = rng.random(size) < unknown_share
    ids[strangers] = [f"gone-{n}" for n in rng.integers(0, 500, strangers.sum())]
    weights = rng.choice([0.0, 1.0, 2.0, 4.0], size=size)
    history, unknown = rec.resolve(zip(ids.tolist(), weights.tolist(), strict=True))
    assert unknown == list(dict.fromkeys(ids[strangers].tolist()))
    strongest: dict[str, float] = {}
    for item, weight in zip(ids[~strangers].tolist(), weights[~strangers].tolist(), strict=True):
        strongest[item] = max(weight, strongest.get(item, 0.0))
    # The strongest weight per known item; items with only zero weights stay, as seen.
    assert {rec.rows[i]["item_id"]: w for i, w in history.items()} == strongest
    k = int(rng.integers(1, 1001))
    built = History(weights=history, owned=frozenset(), unknown=unknown)
    policy = ExcludeHistory.seen if seed % 2 else ExcludeHistory.none
    hidden = set(history) if policy == ExcludeHistory.seen else set()
    check(rec, built, k=k, policy=policy, exclude=set(), hidden=hidden, f=None, explain=True)


@PROPERTY
@given(data=st.data())
def test_filters_select_exactly_the_matching_items(recommender, data):
    """The eligibility mask behind every filtered request, over the whole catalog."""
    rec = recommender
    f = data.draw(filters(rec), label="filters")
    expected = [matches(item, f) for item in rec.rows]
    assert rec.catalog.passes(np.arange(rec.n_items), f).tolist() == expected


@PROPERTY
@given(data=st.data())
def test_similar_items(recommender, data):
    """GET /v1/items/{id}/similar for any item that is not deleted."""
    rec = recommender
    findable = [i for i, item in enumerate(rec.rows) if not item.get("deleted")]
    idx = data.draw(st.sampled_from(findable), label="item")
    k = data.draw(k_values, label="k")
    by = data.draw(st.sampled_from(["collaborative", "content"]), label="by")
    ranked, scores = rec.similar(idx, k=k, by=by)
    again = rec.similar(idx, k=k, by=by)
    ids = ranked.tolist()
    candidates = {i for i, item in enumerate(rec.rows) if matches(item, None)} - {idx}
    assert len(ids) == len(set(ids)) == min(k, len(candidates))
    assert set(ids) <= candidates
    assert np.all(np.isfinite(scores)) and np.all(np.diff(scores) <= 0)
    assert np.array_equal(ranked, again[0]) and np.array_equal(scores, again[1])
    assert all(-1.0 - 1e-5 <= s <= 1.0 + 1e-5 for s in scores.tolist()), "cosine similarities"


def test_candidate_pools_grow_with_the_list_asked_for():
    pools = Pools()
    assert [pools.for_k(k) for k in (1, 10, 30, 50, 100, 1000)] == [50, 50, 150, 250, 500, 500]
    assert SMALL_POOLS.for_k(1) == SMALL_POOLS.for_k(100) == 20


def test_two_stage_gives_each_candidate_its_exhaustive_score(artifacts_dir):
    """Candidates are standardised with each component's moments over the whole catalog, so a
    candidate's blended score is the one exhaustive scoring gives it (up to the moments'
    low-rank covariance: LinearMoments); with pools that hold the best items the two rankings
    are the same."""
    loaded = artifact.load(artifacts_dir)
    exhaustive = Recommender(loaded, mode="exhaustive")
    small, large = (Recommender(loaded, mode="two_stage", pools=p) for p in (SMALL_POOLS, Pools()))
    rng = np.random.default_rng(5)
    for _ in range(30):
        items = rng.choice(exhaustive.n_items, rng.integers(1, 30), replace=False)
        history = {
            int(i): float(w) for i, w in zip(items, rng.choice([1.0, 2.0, 4.0], len(items)), strict=True)
        }
        full = exhaustive.recommend(history, k=exhaustive.n_items, exclude=history)
        score_of = dict(zip(full.item_idx.tolist(), full.scores.tolist(), strict=True))
        found = small.recommend(history, k=10, exclude=history)
        assert np.allclose(found.scores, [score_of[i] for i in found.item_idx.tolist()], rtol=1e-3, atol=1e-4)
        same = large.recommend(history, k=10, exclude=history)
        assert same.item_idx.tolist() == full.item_idx[:10].tolist()


def test_linear_moments_are_the_scores_mean_and_deviation_over_the_catalog():
    """Every direction of the covariance is kept (exact) when fewer than half of them would
    not do: narrow rows, a flat spectrum; wide rows with a decaying spectrum keep fewer, and
    queries in the span the rows fill still get the deviation within 0.1%."""
    from app.scoring.components.base import LinearMoments

    rng = np.random.default_rng(8)
    for d, spectrum in ((40, 1.0), (LinearMoments.RANK * 2, 1.0), (300, 0.9)):
        scale = spectrum ** np.arange(d)  # a decaying spectrum, as trained embeddings have
        rows = (rng.standard_normal((3000, d)) * scale).astype(np.float32)
        bias = rng.standard_normal(3000).astype(np.float32)
        mixed = rows[:50] @ rng.standard_normal((d, d)).astype(np.float32) * scale
        queries = np.hstack([mixed, np.ones((50, 1))])
        moments = LinearMoments(rows, bias)
        mean, std = moments(queries)
        kept = moments.stats()[1].shape[1]
        assert kept == d + 1 if d <= 2 * LinearMoments.RANK else kept < d  # a request reads `kept` columns
        scores = np.hstack([rows, bias[:, None]]).astype(np.float64) @ queries.T.astype(np.float64)
        assert np.allclose(mean[:, 0], scores.mean(axis=0), rtol=1e-4, atol=1e-4)
        assert np.allclose(std[:, 0], scores.std(axis=0), rtol=1e-5 if d <= 2 * LinearMoments.RANK else 1e-3)


def test_item_item_gathers_the_same_neighbours_slice_by_slice_and_vectorised(artifacts_dir, monkeypatch):
    """A history's rows of B: joined slice by slice (few items) or gathered by offsets
    (many, and batches); both are the history times B."""
    from app.scoring.components import ease

    component = Recommender(artifact.load(artifacts_dir)).scorer.components["ease"]
    rng = np.random.default_rng(6)
    b = component.matrix.toarray()
    for sizes in ((1,), (20,), (3, 0, 30)):
        rows = [np.sort(rng.choice(component.n_base, n, replace=False)).astype(np.int32) for n in sizes]
        weights = [rng.choice([1.0, 4.0], n).astype(np.float32) for n in sizes]
        history = histories_matrix(list(zip(rows, weights, strict=True)), component.n_items)
        found = []
        for sliced in (10**9, 0):
            monkeypatch.setattr(ease, "SLICED_SOURCES", sliced)
            found.append(component.neighbours(history))
        (r, i, w), (r2, i2, w2) = found
        assert np.array_equal(r, r2) and np.array_equal(i, i2) and np.allclose(w, w2)
        scores = np.zeros((len(sizes), component.n_base))
        np.add.at(scores, (r, i), w)
        dense = np.zeros((len(sizes), component.n_base))
        for row, (items, values) in enumerate(zip(rows, weights, strict=True)):
            dense[row, items] = values
        assert np.allclose(scores, dense @ b, atol=1e-5)


def test_item_item_sums_the_same_over_a_dense_row_and_sorted_neighbours(artifacts_dir, monkeypatch):
    """One history's item-item scores: a catalog-long bincount for small catalogs, a sort of
    the neighbours for large ones; the same items and sums either way."""
    from app.scoring.components import ease

    component = Recommender(artifact.load(artifacts_dir)).scorer.components["ease"]
    rng = np.random.default_rng(3)
    for size in (1, 5, 40):
        items = np.sort(rng.choice(component.n_base, size, replace=False)).astype(np.int32)
        history = histories_matrix(
            [(items, rng.choice([1.0, 4.0], size).astype(np.float32))], component.n_items
        )
        monkeypatch.setattr(ease, "DENSE_PER_NEIGHBOUR", 10**9)
        dense = component.sparse_scores(history)
        monkeypatch.setattr(ease, "DENSE_PER_NEIGHBOUR", 0)
        by_sort = component.sparse_scores(history)
        assert np.array_equal(dense[0], by_sort[0]) and np.allclose(dense[1], by_sort[1], atol=1e-6)
        assert len(dense[0]) > 0
