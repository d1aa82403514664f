"""The catalog of a serving model: item ids, records and the columns filters read, stored in
the artifact as memory-mapped arrays (shared by every worker, nothing parsed per item at
start-up), plus the changes made through the API since training (an in-process overlay).

Artifact arrays (:data:`ARRAYS`): ids as fixed-width UTF-8 bytes in item order, and sorted
with their order (so an id is found by binary search); each item's JSON record in one blob
with offsets; category and brand codes (-1: none) with their vocabularies in
``catalog.json``, the items of each category and brand (CSR), price (NaN: none) and its sort
order, availability. Users: ids the same way.

Changes (``apply``): a new item gets the next index after the artifact's items; a changed
item keeps its index and its record, columns and availability are replaced; a deleted item
is unavailable and unknown to lookups. Everything here is O(1) per change or per looked-up
item, and O(k) per filtered candidate list: nothing scans the catalog per request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from app.scoring.components.base import ArraySpec

RECORD_FIELDS = ("item_id", "title", "category", "brand", "price", "attributes")
ITEM_FIELDS = ("title", "category", "brand", "price", "attributes", "available")
VIEW_FIELDS = ("item_id", "title", "category", "brand", "price")  # what an answer shows
# Artifact items whose view is kept decoded (a few hundred bytes each): answers repeat the
# popular items, and decoding their JSON records cost ~33 us a list of 10 on Beauty.
VIEW_CACHE = 50_000

ARRAYS: dict[str, ArraySpec] = {
    "item_ids": ("S", ("n_items",)),
    "item_ids_sorted": ("S", ("n_items",)),
    "item_id_order": ("int64", ("n_items",)),
    "item_record_offsets": ("int64", ("n_items_1",)),
    "item_records": ("uint8", ("item_record_bytes",)),
    "item_category": ("int32", ("n_items",)),
    "item_brand": ("int32", ("n_items",)),
    "item_price": ("float64", ("n_items",)),
    "item_available": ("bool", ("n_items",)),
    "price_order": ("int64", ("n_priced",)),
    "price_sorted": ("float64", ("n_priced",)),
    "category_indptr": ("int64", ("n_categories_1",)),
    "category_items": ("int64", ("n_categorised",)),
    "brand_indptr": ("int64", ("n_brands_1",)),
    "brand_items": ("int64", ("n_branded",)),
    "user_ids": ("S", ("n_users",)),
    "user_ids_sorted": ("S", ("n_users",)),
    "user_id_order": ("int64", ("n_users",)),
}


def _ids(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids as bytes, sorted, order) for binary-search lookups."""
    encoded = np.array([v.encode() for v in values], dtype=bytes) if len(values) else np.zeros(0, "S1")
    order = np.argsort(encoded, kind="stable").astype(np.int64)
    return encoded, encoded[order], order


def _codes(values: Sequence[Any]) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """(int32 code per item, -1 none; vocabulary; CSR of the items of each code)."""
    vocab = sorted({str(v) for v in values if v is not None and v != ""})
    index = {v: i for i, v in enumerate(vocab)}
    codes = np.array([index.get(str(v), -1) if v is not None else -1 for v in values], dtype=np.int32)
    order = np.argsort(codes, kind="stable")
    members = order[codes[order] >= 0].astype(np.int64)
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(np.bincount(codes[codes >= 0], minlength=len(vocab)), out=indptr[1:])
    return codes, vocab, indptr, members


def encode(
    items: Sequence[Mapping[str, Any]], users: Sequence[str]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The catalog arrays of an artifact and its ``catalog.json`` (vocabularies)."""
    arrays: dict[str, np.ndarray] = {}
    ids = [str(item["item_id"]) for item in items]
    arrays["item_ids"], arrays["item_ids_sorted"], arrays["item_id_order"] = _ids(ids)
    blobs = [
        json.dumps({f: item.get(f) for f in RECORD_FIELDS}, ensure_ascii=False).encode() for item in items
    ]
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    arrays["item_record_offsets"] = offsets
    arrays["item_records"] = np.frombuffer(b"".join(blobs), dtype=np.uint8).copy()
    vocab = {}
    for name in ("category", "brand"):
        codes, vocab[name], indptr, members = _codes([item.get(name) for item in items])
        arrays[f"item_{name}"], arrays[f"{name}_indptr"], arrays[f"{name}_items"] = codes, indptr, members
    price = np.array([_price(item.get("price")) for item in items], dtype=np.float64)
    arrays["item_price"] = price
    priced = np.flatnonzero(~np.isnan(price))
    arrays["price_order"] = priced[np.argsort(price[priced], kind="stable")].astype(np.int64)
    arrays["price_sorted"] = price[arrays["price_order"]]
    arrays["item_available"] = np.array(
        [item.get("available", True) is not False for item in items], dtype=bool
    )
    arrays["user_ids"], arrays["user_ids_sorted"], arrays["user_id_order"] = _ids(list(users))
    return arrays, {"categories": vocab["category"], "brands": vocab["brand"]}


def _price(value: Any) -> float:
    try:
        price = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return price if np.isfinite(price) and price >= 0 else float("nan")


def lookup(ids_sorted: np.ndarray, order: np.ndarray, values: Iterable[str]) -> np.ndarray:
    """Indices of ``values`` (-1 when unknown), by binary search of the sorted ids."""
    wanted = np.array([v.encode() for v in values], dtype=bytes)
    if not len(wanted) or not len(ids_sorted):
        return np.full(len(wanted), -1, dtype=np.int64)
    pos = np.searchsorted(ids_sorted, wanted)
    pos = np.minimum(pos, len(ids_sorted) - 1)
    found = ids_sorted[pos] == wanted
    return np.where(found, order[pos], -1)


@dataclass(frozen=True)
class Filters:
    category: frozenset[str] | None = None
    brand: frozenset[str] | None = None
    min_price: float | None = None
    max_price: float | None = None

    @classmethod
    def of(
        cls,
        category: Iterable[str] | None,
        brand: Iterable[str] | None,
        min_price: float | None,
        max_price: float | None,
    ) -> Filters:
        """From request values; an absent or empty list does not filter."""
        return cls(
            category=frozenset(category) if category else None,
            brand=frozenset(brand) if brand else None,
            min_price=min_price,
            max_price=max_price,
        )

    @property
    def empty(self) -> bool:
        return (
            self.category is None and self.brand is None and self.min_price is None and self.max_price is None
        )


@dataclass
class Overlay:
    """Catalog changes since training, by item index (new items: indices >= the base size)."""

    new_ids: dict[str, int] = field(default_factory=dict)
    records: dict[int, dict[str, Any]] = field(default_factory=dict)  # changed and new items
    deleted: set[int] = field(default_factory=set)


class Catalog:
    """Lookups, records, availability and filters over the artifact's catalog arrays and the
    overlay of changes. Indices are item indices of the model (new items after the base)."""

    def __init__(self, arrays: Mapping[str, np.ndarray], vocab: Mapping[str, list[str]]) -> None:
        # Plain views of the mapped files: np.memmap's own indexing costs microseconds a call.
        self.a = {name: np.asarray(array) for name, array in arrays.items()}
        self.n_base = len(arrays["item_ids"])
        self.categories: list[str] = list(vocab["categories"])
        self.brands: list[str] = list(vocab["brands"])
        self._category_code = {c: i for i, c in enumerate(self.categories)}
        self._brand_code = {b: i for i, b in enumerate(self.brands)}
        self.overlay = Overlay()
        self._changed = np.zeros(0, dtype=np.int64)  # sorted indices with an overlay record
        self._views: dict[int, Mapping[str, Any]] = {}

    @property
    def n_items(self) -> int:
        return self.n_base + len(self.overlay.new_ids)

    # -- ids -------------------------------------------------------------------------------
    def indices(self, item_ids: Sequence[str]) -> np.ndarray:
        """Item index of each id (-1: unknown). A deleted item keeps its index (it still says
        something about the shoppers who had it) but is never recommended."""
        found = lookup(self.a["item_ids_sorted"], self.a["item_id_order"], item_ids)
        if self.overlay.new_ids:
            for n, item_id in enumerate(item_ids):
                if found[n] < 0 and item_id in self.overlay.new_ids:
                    found[n] = self.overlay.new_ids[item_id]
        return found

    def index_of(self, item_id: str) -> int | None:
        idx = int(self.indices([item_id])[0])
        return idx if idx >= 0 else None

    def item_id(self, idx: int) -> str:
        if idx < self.n_base:
            return bytes(self.a["item_ids"][idx]).decode()
        return str(self.overlay.records[idx]["item_id"])

    # -- records ---------------------------------------------------------------------------
    def record(self, idx: int) -> dict[str, Any]:
        """The item's catalog entry (item_id, title, category, brand, price, attributes,
        available)."""
        changed = self.overlay.records.get(idx)
        if changed is not None:
            return dict(changed)
        offsets = self.a["item_record_offsets"]
        record = json.loads(bytes(self.a["item_records"][offsets[idx] : offsets[idx + 1]]))
        record["available"] = bool(self.a["item_available"][idx])
        return dict(record)

    def view(self, idx: int) -> Mapping[str, Any]:
        """The item's :data:`VIEW_FIELDS` (read-only). An artifact item's is decoded once and
        kept (up to :data:`VIEW_CACHE` items, then the cache starts again); a changed item's
        comes from its overlay record each time."""
        changed = self.overlay.records.get(idx)
        if changed is not None:
            return {f: changed.get(f) for f in VIEW_FIELDS}
        view = self._views.get(idx)
        if view is None:
            record = self.record(idx)
            view = MappingProxyType({f: record.get(f) for f in VIEW_FIELDS})
            if len(self._views) >= VIEW_CACHE:
                self._views.clear()
            self._views[idx] = view
        return view

    def values(self, idx: np.ndarray, attribute: str) -> list[str | None]:
        """Each item's ``category`` or ``brand`` (None: it has none)."""
        vocab = {"category": self.categories, "brand": self.brands}[attribute]
        codes = self.a[f"item_{attribute}"]
        out: list[str | None] = []
        for i in np.asarray(idx, dtype=np.int64).tolist():
            changed = self.overlay.records.get(i)
            if changed is not None:
                value = changed.get(attribute)
                out.append(None if value is None or value == "" else str(value))
            else:
                code = int(codes[i])
                out.append(vocab[code] if code >= 0 else None)
        return out

    def available(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx),) bool: the items can be recommended (not hidden, not deleted)."""
        idx = np.asarray(idx, dtype=np.int64)
        ok = np.zeros(len(idx), dtype=bool)
        base = idx < self.n_base
        ok[base] = self.a["item_available"][idx[base]]
        return self._patch(idx, ok, lambda r: r.get("available", True) is not False)

    def passes(self, idx: np.ndarray, filters: Filters | None) -> np.ndarray:
        """(len(idx),) bool: available and matching every filter."""
        idx = np.asarray(idx, dtype=np.int64)
        ok = self.available(idx)
        if filters is None or filters.empty:
            return ok
        base = np.flatnonzero(idx < self.n_base)
        rows = idx[base]
        match = np.ones(len(rows), dtype=bool)
        if filters.category is not None:
            codes = [self._category_code[c] for c in filters.category if c in self._category_code]
            match &= np.isin(self.a["item_category"][rows], codes)
        if filters.brand is not None:
            codes = [self._brand_code[b] for b in filters.brand if b in self._brand_code]
            match &= np.isin(self.a["item_brand"][rows], codes)
        price = np.asarray(self.a["item_price"][rows])
        if filters.min_price is not None:
            match &= price >= filters.min_price  # unknown price (NaN) never matches
        if filters.max_price is not None:
            match &= price <= filters.max_price
        matched = np.ones(len(idx), dtype=bool)
        matched[base] = match
        matched = self._patch(idx, matched, lambda r: _record_passes(r, filters))
        return ok & matched

    def _patch(self, idx: np.ndarray, values: np.ndarray, rule: Any) -> np.ndarray:
        """Replace the values of items that have an overlay record by ``rule(record)``."""
        if not len(self._changed):
            return values
        hit = np.flatnonzero(np.isin(idx, self._changed))
        for n in hit:
            values[n] = int(idx[n]) not in self.overlay.deleted and rule(self.overlay.records[int(idx[n])])
        return values

    # -- filters -------------------------------------------------------------------------
    def plan(
        self, filters: Filters, exact_limit: int, *, scan_limit: int = 200_000
    ) -> tuple[np.ndarray | None, float]:
        """(the sorted items a filter allows, when at most ``exact_limit``, else None; the share
        of the catalog it allows, exact or an upper bound).

        The category, brand and price indexes give one item set per filter field; the smallest
        (when at most ``scan_limit`` items) is checked item by item against every field: the
        cost follows the filter, not the catalog."""
        sets: list[np.ndarray] = []
        for name, values, codes in (
            ("category", filters.category, self._category_code),
            ("brand", filters.brand, self._brand_code),
        ):
            if values is not None:
                indptr, members = self.a[f"{name}_indptr"], self.a[f"{name}_items"]
                parts = [
                    np.asarray(members[indptr[codes[v]] : indptr[codes[v] + 1]]) for v in values if v in codes
                ]
                sets.append(np.concatenate(parts) if parts else np.zeros(0, np.int64))
        if filters.min_price is not None or filters.max_price is not None:
            order, ordered = self.a["price_order"], self.a["price_sorted"]
            low = 0 if filters.min_price is None else int(np.searchsorted(ordered, filters.min_price, "left"))
            high = (
                len(order)
                if filters.max_price is None
                else int(np.searchsorted(ordered, filters.max_price, "right"))
            )
            sets.append(np.asarray(order[low:high]))
        extra = np.array(sorted({*self.overlay.new_ids.values(), *self._changed.tolist()}), dtype=np.int64)
        if not sets:
            return None, 1.0
        smallest = min(sets, key=len)
        if len(smallest) > scan_limit:
            return None, (len(smallest) + len(extra)) / max(self.n_items, 1)
        pool = np.union1d(smallest, extra)
        allowed = pool[self.passes(pool, filters)]
        if len(allowed) > exact_limit:
            return None, len(allowed) / max(self.n_items, 1)
        return allowed, len(allowed) / max(self.n_items, 1)

    # -- changes -----------------------------------------------------------------------------
    def apply(self, updates: Mapping[str, dict[str, Any] | None]) -> tuple[np.ndarray, np.ndarray]:
        """Apply catalog changes (item_id -> entry, None = deleted); returns (changed item
        indices, new item indices among them), both sorted, deleted items excluded."""
        changed: list[int] = []
        for item_id, entry in updates.items():
            idx = self.index_of(item_id)
            if entry is None:
                if idx is not None:
                    self.overlay.deleted.add(idx)
                    self.overlay.records[idx] = {**self.record(idx), "available": False}
                continue
            if idx is None:
                idx = self.n_items
                self.overlay.new_ids[item_id] = idx
            self.overlay.deleted.discard(idx)
            record = {"item_id": item_id, **{k: entry.get(k) for k in ITEM_FIELDS}}
            record["attributes"] = list(record.get("attributes") or [])
            record["available"] = entry.get("available", True) is not False
            self.overlay.records[idx] = record
            changed.append(idx)
        self._changed = np.array(sorted(self.overlay.records), dtype=np.int64)
        done = np.array(sorted(set(changed)), dtype=np.int64)
        return done, done[done >= self.n_base]

    def is_deleted(self, idx: int) -> bool:
        return idx in self.overlay.deleted


def _record_passes(record: Mapping[str, Any], filters: Filters) -> bool:
    if filters.category is not None and record.get("category") not in filters.category:
        return False
    if filters.brand is not None and record.get("brand") not in filters.brand:
        return False
    price = _price(record.get("price"))
    if filters.min_price is not None and not price >= filters.min_price:
        return False
    return not (filters.max_price is not None and not price <= filters.max_price)
