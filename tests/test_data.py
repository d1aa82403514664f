"""Loading and each cleaning rule on tiny frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.config import CleaningConfig
from models.data import DataError, Dataset, clean, load

NO_MIN = CleaningConfig(min_user_interactions=1, min_item_interactions=1)


def frame(rows, columns=("user_id", "item_id", "event", "value", "timestamp")):
    return Dataset(interactions=pd.DataFrame(rows, columns=list(columns)), items=pd.DataFrame())


def test_missing_ids_are_dropped_and_counted():
    data = frame(
        [
            ("u", "a", "view", np.nan, 1),
            (None, "a", "view", np.nan, 2),
            ("u", None, "click", np.nan, 3),
        ]
    )
    out = clean(data, NO_MIN)
    assert len(out.interactions) == 1
    assert out.dropped["missing_id"] == 2


def test_exact_duplicates_are_dropped():
    data = frame([("u", "a", "view", np.nan, 1)] * 3 + [("u", "a", "view", np.nan, 2)])
    out = clean(data, NO_MIN)
    assert out.dropped["exact_duplicate"] == 2


def test_event_weights_take_the_strongest_event_per_pair():
    data = frame(
        [
            ("u", "a", "view", np.nan, 1),
            ("u", "a", "purchase", 1, 2),
            ("u", "b", "click", np.nan, 3),
        ]
    )
    out = clean(data, NO_MIN).interactions.set_index("item_id")
    assert out.loc["a", "weight"] == 4.0
    assert out.loc["b", "weight"] == 2.0
    assert out.loc["a", "timestamp"] == 2


def test_low_ratings_are_not_positive():
    data = frame([("u", "a", "rating", 2, 1), ("u", "b", "rating", 5, 2)])
    out = clean(data, NO_MIN)
    assert out.interactions["item_id"].tolist() == ["b"]
    assert out.dropped["rating_below_threshold"] == 1


def test_min_counts_reach_a_fixed_point():
    # u3's only item 'c' is dropped (1 user), which leaves u3 with one item -> dropped too.
    rows = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "c")]
    data = frame([(u, i, "view", np.nan, 0) for u, i in rows])
    out = clean(data, CleaningConfig(min_user_interactions=2, min_item_interactions=2))
    assert sorted(out.interactions["user_id"].unique()) == ["u1", "u2"]
    assert set(out.interactions["item_id"]) == {"a", "b"}


def test_unknown_event_is_a_clear_error():
    with pytest.raises(DataError, match="unknown event names: like"):
        clean(frame([("u", "a", "like", np.nan, 1)]), NO_MIN)


def test_empty_after_cleaning_says_what_to_change():
    with pytest.raises(DataError, match="no interactions left after cleaning"):
        clean(frame([("u", "a", "rating", 2.0, 1)]), CleaningConfig())
    with pytest.raises(DataError, match="no interactions left after cleaning"):
        config = CleaningConfig(min_user_interactions=5, min_item_interactions=5)
        clean(frame([("u", "a", "view", np.nan, 1)]), config)


def test_every_user_and_item_is_kept_by_default_and_minimum_counts_are_reported():
    pairs = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "c")]
    rows = [(u, i, "purchase", np.nan, n) for n, (u, i) in enumerate(pairs)]
    kept = clean(frame(rows), CleaningConfig())
    assert len(kept.interactions) == 5  # u3 and c, with one interaction each, stay
    assert (
        kept.dropped["min_counts"]
        == kept.dropped["min_counts_users"]
        == kept.dropped["min_counts_items"]
        == 0
    )
    two = clean(frame(rows), CleaningConfig(min_user_interactions=2, min_item_interactions=2))
    assert len(two.interactions) == 4
    assert (two.dropped["min_counts"], two.dropped["min_counts_users"], two.dropped["min_counts_items"]) == (
        1,
        1,
        1,
    )


def test_generic_csv_missing_column(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("customer,item_id\n1,2\n")
    with pytest.raises(DataError, match=r"log.csv: missing column 'user_id'"):
        load(path)


def test_generic_csv_non_numeric_rating(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,event,value\nu,a,rating,five\n")
    with pytest.raises(DataError, match=r"column 'value' must be numeric.*'five'"):
        load(path)


def test_plain_csv_with_unicode_and_quoted_ids(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        'user_id,item_id,timestamp\n"u,1",é-ü,2024-01-01T00:00:00Z\n"u,1","say ""hi""",1700000000\n'
    )
    data = load(path)
    assert data.interactions["user_id"].tolist() == ["u,1", "u,1"]
    assert data.interactions["item_id"].tolist() == ["é-ü", 'say "hi"']
    assert (data.interactions["event"] == "purchase").all()


def test_online_retail_rules(tmp_path):
    rows = [
        (
            "536365",
            "85123A",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            6,
            "2010-12-01 08:26",
            2.55,
            17850.0,
        ),
        (
            "C536379",
            "85123A",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            -1,
            "2010-12-01 09:41",
            2.55,
            17850.0,
        ),
        ("536366", "POST", "POSTAGE", 1, "2010-12-01 09:00", 18.0, 17850.0),
        ("536367", "22633", "HAND WARMER UNION JACK", 6, "2010-12-01 09:00", 0.0, 13047.0),
        ("536368", "22632", "HAND WARMER RED POLKA DOT", 6, "2010-12-01 09:00", 1.85, None),
        ("536369", "22632", "HAND WARMER RED POLKA DOT", -2, "2010-12-01 09:00", 1.85, 13047.0),
        ("536370", "22632", "HAND WARMER RED POLKA DOT", 2, "2010-12-01 09:00", 1.85, 13047.0),
    ]
    columns = [
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
    ]
    path = tmp_path / "retail.csv"
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    data = load(path)  # format detected from the column names
    assert data.dropped == {
        "missing_customer": 1,
        "cancellation_invoice": 1,
        "non_positive_quantity": 1,
        "non_product_code": 1,
        "non_positive_price": 1,
    }
    assert sorted(data.interactions["item_id"]) == ["22632", "85123A"]
    assert data.interactions["user_id"].tolist()[0] == "17850"
    items = data.items.set_index("item_id")
    assert items.loc["85123A", "category"] == "holder"


def test_s3rec_lines_and_attributes(tmp_path):
    (tmp_path / "B.txt").write_text("1 10 11 12\n2 11 12\n")
    (tmp_path / "attrs.json").write_text(json.dumps({"10": [1, 2], "11": [2]}))
    data = load(tmp_path / "B.txt", tmp_path / "attrs.json")
    assert len(data.interactions) == 5
    assert data.interactions["timestamp"].tolist()[:3] == [0, 1, 2]
    items = data.items.set_index("item_id")
    assert items.loc["10", "attributes"] == ["attr=1", "attr=2"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "cannot read its header as csv"),
        (bytes(range(256)) * 8, "cannot read"),  # binary
        (b"user,item\nu1,i1\n", "missing column 'user_id'"),
        (b"user_id,item_id,timestamp\nu1,i1,yesterday\n", "unreadable time 'yesterday'"),
        (b"user_id,item_id,event,value\nu1,i1,rating,five\n", "column 'value' must be numeric"),
        (
            b"user_id,item_id,event,value\nu1,i1,rating,1\nu2,i2,rating,2\n",
            "no interactions left after cleaning",
        ),
        (
            b"user_id,item_id,event\nu1,i1,view\nu2,i2,view\n",
            "too few to choose settings on validation users",
        ),
    ],
    ids=[
        "empty",
        "binary",
        "missing-column",
        "bad-time",
        "bad-value",
        "empty-after-cleaning",
        "too-few-users",
    ],
)
def test_train_cli_refuses_bad_files_with_one_clear_line(tmp_path, capsys, content, message):
    from scripts.train import main

    path = tmp_path / "events.csv"
    path.write_bytes(content)
    assert main(["--interactions", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "current").exists()
