"""Reading shop logs and catalogs into one canonical shape, and cleaning them.

Canonical interactions: ``user_id, item_id, event, value, timestamp`` (ids are strings,
``timestamp`` is epoch seconds or NaN). Canonical items: ``item_id, title, category, brand,
price, attributes`` (``attributes`` is a list of strings such as ``"color=red"``).

Adapters: ``generic`` (CSV/Parquet with those column names), ``online-retail`` (the UCI file
as distributed) and ``s3rec`` (``user item item ...`` lines + ``item2attributes.json``).
Every problem with an input is a :class:`DataError` naming the file, column and rule.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from app.events import TRAINING_EVENTS, Event
from models.config import CleaningConfig
from models.errors import DataError

FORMATS = ("auto", "generic", "online-retail", "s3rec")
ITEM_COLUMNS = ("item_id", "title", "category", "brand", "price", "attributes")


@dataclass
class Dataset:
    interactions: pd.DataFrame
    items: pd.DataFrame
    # Rows removed per cleaning rule, in the order the rules ran.
    dropped: dict[str, int] = field(default_factory=dict)


def read_table(path: Path) -> pd.DataFrame:
    """Read CSV, Parquet or Excel; id-like columns stay strings."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".xlsx", ".xls"):
            return pd.read_excel(path, dtype=str)
        return pd.read_csv(path, dtype=str, keep_default_na=True)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise DataError(f"{path}: cannot read as {suffix or 'csv'}: {exc}") from exc


def detect_format(path: Path) -> str:
    if path.suffix.lower() == ".txt":
        return "s3rec"
    suffix = path.suffix.lower()
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            columns = set(pq.read_schema(path).names)
        elif suffix in (".xlsx", ".xls"):
            columns = set(read_table(path).columns)
        else:
            columns = set(pd.read_csv(path, nrows=0).columns)
    except DataError:
        raise
    except Exception as exc:  # pandas and pyarrow raise many types for unreadable files
        raise DataError(f"{path}: cannot read its header as {suffix.lstrip('.') or 'csv'}: {exc}") from exc
    if {"InvoiceNo", "StockCode", "CustomerID"} <= columns:
        return "online-retail"
    return "generic"


def load(
    interactions_path: Path,
    items_path: Path | None = None,
    *,
    fmt: str = "auto",
) -> Dataset:
    """Load interactions (and an optional catalog) in any supported format."""
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(interactions_path)
    if fmt == "online-retail":
        return load_online_retail(interactions_path)
    if fmt == "s3rec":
        return load_s3rec(interactions_path, items_path)
    return load_generic(interactions_path, items_path)


def load_generic(interactions_path: Path, items_path: Path | None = None) -> Dataset:
    frame = read_table(interactions_path)
    for column in ("user_id", "item_id"):
        if column not in frame.columns:
            raise DataError(
                f"{interactions_path}: missing column {column!r} "
                f"(found: {', '.join(map(str, frame.columns))})"
            )
    interactions = pd.DataFrame(
        {
            "user_id": _as_id(frame["user_id"]),
            "item_id": _as_id(frame["item_id"]),
            # No event column: every row is an implicit positive interaction.
            "event": frame["event"].astype("string").str.strip().str.lower()
            if "event" in frame.columns
            else "purchase",
            "value": _numeric(frame, "value", interactions_path, required=False),
            "timestamp": _timestamps(frame, interactions_path),
        }
    )
    items = _generic_items(items_path) if items_path else _empty_items()
    return Dataset(interactions=interactions, items=items)


def _generic_items(path: Path) -> pd.DataFrame:
    frame = read_table(path)
    if "item_id" not in frame.columns:
        raise DataError(f"{path}: missing column 'item_id'")
    known = {"item_id", "title", "category", "brand", "price"}
    extra = [c for c in frame.columns if c not in known]
    attributes = [
        [f"{c}={v}" for c, v in zip(extra, row, strict=True) if isinstance(v, str) and v]
        for row in frame[extra].astype("string").fillna("").itertuples(index=False)
    ]
    items = pd.DataFrame(
        {
            "item_id": _as_id(frame["item_id"]),
            "title": _text(frame, "title"),
            "category": _text(frame, "category"),
            "brand": _text(frame, "brand"),
            "price": _numeric(frame, "price", path, required=False),
            "attributes": attributes,
        }
    )
    return items.dropna(subset=["item_id"]).drop_duplicates("item_id", keep="last")


# Stock codes that are fees, postage or manual adjustments, not products.
NON_PRODUCT_CODES = {
    "POST", "D", "M", "DOT", "BANK CHARGES", "C2", "PADS", "AMAZONFEE", "CRUK", "S", "B",
    "m", "gift_0001_10", "gift_0001_20", "gift_0001_30", "gift_0001_40", "gift_0001_50",
}  # fmt: skip
_PRODUCT_CODE = re.compile(r"^\d{5}[A-Za-z]{0,2}$")


def load_online_retail(path: Path) -> Dataset:
    """UCI Online Retail as distributed; the cleaning rules specific to it run here."""
    frame = read_table(path)
    required = ["InvoiceNo", "StockCode", "Description", "Quantity", "UnitPrice", "CustomerID"]
    for column in required:
        if column not in frame.columns:
            raise DataError(f"{path}: missing Online Retail column {column!r}")
    dropped: dict[str, int] = {}

    def drop(mask: pd.Series, rule: str) -> None:
        nonlocal frame
        dropped[rule] = int(mask.sum())
        frame = frame[~mask]

    frame = frame.assign(
        InvoiceNo=frame["InvoiceNo"].astype(str),
        StockCode=frame["StockCode"].astype(str).str.strip(),
        Quantity=pd.to_numeric(frame["Quantity"], errors="coerce"),
        UnitPrice=pd.to_numeric(frame["UnitPrice"], errors="coerce"),
    )
    drop(frame["CustomerID"].isna(), "missing_customer")
    drop(frame["InvoiceNo"].str.startswith("C"), "cancellation_invoice")
    drop(~(frame["Quantity"] > 0), "non_positive_quantity")
    drop(~frame["StockCode"].str.match(_PRODUCT_CODE), "non_product_code")
    drop(~(frame["UnitPrice"] > 0), "non_positive_price")

    user = frame["CustomerID"].astype(str).str.replace(r"\.0$", "", regex=True)
    timestamps = pd.to_datetime(frame["InvoiceDate"], errors="coerce") if "InvoiceDate" in frame else None
    interactions = pd.DataFrame(
        {
            "user_id": user.to_numpy(),
            "item_id": frame["StockCode"].to_numpy(),
            "event": "purchase",
            "value": frame["Quantity"].astype(float).to_numpy(),
            "timestamp": _epoch(timestamps).to_numpy() if timestamps is not None else np.nan,
        }
    )
    described = frame.dropna(subset=["Description"])
    titles = described.groupby("StockCode")["Description"].agg(lambda s: s.mode().iat[0])
    prices = frame.groupby("StockCode")["UnitPrice"].median()
    items = pd.DataFrame({"item_id": prices.index.astype(str)})
    items["title"] = items["item_id"].map(titles).astype("string").str.strip()
    # No categories are given; the last word of a product name is its kind
    # ("WHITE HANGING HEART T-LIGHT HOLDER" -> "holder"), a usable derived category.
    items["category"] = items["title"].str.split().str[-1].str.lower()
    items["brand"] = pd.NA
    items["price"] = items["item_id"].map(prices).to_numpy(dtype=float)
    items["attributes"] = [[] for _ in range(len(items))]
    return Dataset(interactions=interactions, items=items, dropped=dropped)


def load_s3rec(path: Path, attributes_path: Path | None = None) -> Dataset:
    """``user item item ...`` lines (chronological) + optional ``item2attributes.json``."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    users: list[str] = []
    items: list[str] = []
    positions: list[int] = []
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise DataError(f"{path}:{number}: expected 'user item item ...'")
            users.extend([parts[0]] * (len(parts) - 1))
            items.extend(parts[1:])
            positions.extend(range(len(parts) - 1))
    interactions = pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "event": "purchase",
            "value": np.nan,
            "timestamp": np.asarray(positions, dtype=np.float64),  # order only
        }
    )
    catalog = _empty_items()
    if attributes_path is not None:
        try:
            mapping = json.loads(attributes_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{attributes_path}: cannot read item attributes: {exc}") from exc
        catalog = pd.DataFrame(
            {
                "item_id": list(mapping),
                "title": pd.NA,
                "category": pd.NA,
                "brand": pd.NA,
                "price": np.nan,
                "attributes": [[f"attr={a}" for a in values] for values in mapping.values()],
            }
        )
    return Dataset(interactions=interactions, items=catalog)


def clean(dataset: Dataset, config: CleaningConfig, *, source: str = "interactions") -> Dataset:
    """Apply the documented cleaning rules; return one row per (user, item) with a weight.

    Output columns: ``user_id, item_id, weight, timestamp`` (latest event time).
    ``dataset.dropped`` gains one count of rows per rule (``min_counts``: user-item pairs),
    and the users and items the minimum counts removed.
    """
    frame = dataset.interactions.copy()
    dropped = dict(dataset.dropped)

    def drop(mask: pd.Series, rule: str) -> None:
        nonlocal frame
        dropped[rule] = dropped.get(rule, 0) + int(mask.sum())
        frame = frame[~mask.to_numpy()]

    drop(frame["user_id"].isna() | frame["item_id"].isna(), "missing_id")
    unknown = sorted(set(frame["event"].dropna().astype(str)) - set(Event))
    if unknown or frame["event"].isna().any():
        shown = ", ".join(unknown[:5]) or "<empty>"
        raise DataError(
            f"{source}: column 'event' has unknown event names: {shown}; allowed: {', '.join(Event)}"
        )
    # Events that are not training signals (impressions) are archived, never interactions.
    drop(~frame["event"].isin(TRAINING_EVENTS), "not_training_signal")
    if config.drop_duplicates:
        drop(frame.duplicated(), "exact_duplicate")
    is_rating = frame["event"] == "rating"
    if is_rating.any() and frame.loc[is_rating, "value"].isna().any():
        raise DataError(f"{source}: column 'value' must hold a numeric 1-5 rating for 'rating' events")
    drop(is_rating & (frame["value"] < config.rating_threshold), "rating_below_threshold")
    frame = frame.assign(weight=frame["event"].map(config.event_weights).astype("float32"))
    frame = (
        frame.groupby(["user_id", "item_id"], sort=False)
        .agg(weight=("weight", "max"), timestamp=("timestamp", "max"))
        .reset_index()
    )
    before = len(frame), frame["user_id"].nunique(), frame["item_id"].nunique()
    frame = _min_counts(frame, config.min_user_interactions, config.min_item_interactions)
    dropped["min_counts"] = before[0] - len(frame)  # user-item pairs
    dropped["min_counts_users"] = before[1] - frame["user_id"].nunique()
    dropped["min_counts_items"] = before[2] - frame["item_id"].nunique()
    if frame.empty:
        raise DataError(
            f"{source}: no interactions left after cleaning (dropped per rule: {dropped}); "
            "lower cleaning.min_user_interactions / min_item_interactions or add data"
        )
    items = dataset.items
    return Dataset(interactions=frame.reset_index(drop=True), items=items, dropped=dropped)


def _min_counts(frame: pd.DataFrame, min_user: int, min_item: int) -> pd.DataFrame:
    """Drop users and items below the minimum counts until both minima hold (fixed point)."""
    while True:
        user_counts = frame["user_id"].map(frame["user_id"].value_counts())
        item_counts = frame["item_id"].map(frame["item_id"].value_counts())
        keep = (user_counts >= min_user) & (item_counts >= min_item)
        if keep.all():
            return frame
        frame = frame[keep]


def _as_id(column: pd.Series) -> pd.Series:
    ids = column.astype("string").str.strip()
    return ids.mask(ids == "")


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="string")
    return _as_id(frame[column])


def _numeric(frame: pd.DataFrame, column: str, path: Path, *, required: bool) -> pd.Series:
    if column not in frame.columns:
        if required:
            raise DataError(f"{path}: missing column {column!r}")
        return pd.Series(np.nan, index=frame.index, dtype=float)
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna() & (raw.astype("string").str.strip() != "")
    if bad.any():
        example = raw[bad].iloc[0]
        raise DataError(
            f"{path}: column {column!r} must be numeric; row {int(bad.to_numpy().argmax()) + 2} "
            f"has {example!r}"
        )
    return values.astype(float)


def _timestamps(frame: pd.DataFrame, path: Path) -> pd.Series:
    if "timestamp" not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    raw = frame["timestamp"]
    numeric = pd.to_numeric(raw, errors="coerce")
    text = raw[numeric.isna() & raw.notna()]
    parsed = _epoch(pd.to_datetime(text, errors="coerce", utc=True, format="mixed"))
    if parsed.isna().any():
        bad = text[parsed.isna()].iloc[0]
        raise DataError(
            f"{path}: column 'timestamp' has an unreadable time {bad!r} (use epoch seconds or ISO-8601)"
        )
    return numeric.astype(float).fillna(parsed)


def _epoch(times: pd.Series) -> pd.Series:
    times = pd.to_datetime(times, utc=True)
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    return (times - epoch).dt.total_seconds()


def _empty_items() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in ITEM_COLUMNS})
