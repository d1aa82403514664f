"""A shopper's history at request time, and what to exclude from their recommendations.

The history joins three sources, each item at its strongest weight:

- the training history of a known user, from the artifact;
- the live events the feedback store holds for the user (events since training);
- a session's items, standing for one event type (``items_event``, default ``purchase``).

Weights are the trained model's (its manifest's event weights and rating threshold), with
``app.events``' defaults for event types the model does not know (an ``impression``: 0). A
weight of 0 (a 1-star rating, an impression) marks the item as seen without any signal.

Exclusion policies (``ExcludeHistory``): ``purchased`` (the default) hides the items the
shopper owns, ``seen`` every item of the history, ``none`` nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np

from app.events import EVENT_TYPES, OWNING_EVENTS, Event
from app.scoring.recommender import Recommender


class ExcludeHistory(StrEnum):
    purchased = "purchased"
    seen = "seen"
    none = "none"


class LiveEvent(Protocol):
    """One event of the feedback store's live list (app.store.feedback.RecentEvent)."""

    @property
    def item_id(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def value(self) -> float | None: ...


@dataclass(frozen=True)
class History:
    weights: dict[int, float]  # item_idx -> strongest weight; 0 = seen, no signal
    owned: frozenset[int]  # items the shopper owns (bought, rated)
    unknown: list[str]  # session item ids the catalog does not know, first-seen order
    # (hidden,) float32 stored vector of a known user, when it is still the fold-in of
    # ``weights`` (no live event or session item added weight); else None.
    user_vector: np.ndarray | None = None

    def excluded(self, policy: ExcludeHistory) -> set[int]:
        """Item indices the policy hides."""
        if policy == ExcludeHistory.seen:
            return set(self.weights)
        if policy == ExcludeHistory.purchased:
            return set(self.owned)
        return set()


def event_weight(recommender: Recommender, event: str, value: float | None = None) -> float:
    """Weight of one event by the model's rules: a rating below the threshold counts 0."""
    if event == Event.rating and (value is None or value < recommender.rating_threshold):
        return 0.0
    return type_weight(recommender, event)


def type_weight(recommender: Recommender, event: str) -> float:
    """The model's weight of an event type (app.events' default when it was not trained with it)."""
    default = EVENT_TYPES[Event(event)].weight if event in _NAMES else 0.0
    return float(recommender.event_weights.get(event, default))


_NAMES = frozenset(e.value for e in Event)


def build(
    recommender: Recommender,
    *,
    user_id: str | None = None,
    live: Iterable[LiveEvent] = (),
    session: Iterable[str] = (),
    session_event: Event = Event.purchase,
) -> History:
    """The history of a user (training + live events) and/or a session's items.

    Session items count as ``session_event`` events at that type's weight (a ``rating``
    counts as a positive rating: there is no value to compare with the threshold).
    """
    weights: dict[int, float] = {}
    owned: set[int] = set()
    trained = _training_weights(recommender, user_id)
    weights.update(trained)
    # The artifact keeps one weight per item and user (the strongest of their events), not
    # the events: an item at the purchase weight or above was bought or rated well (or had an
    # event type a training config weighted as strongly) and counts as owned.
    purchase = type_weight(recommender, Event.purchase)
    owned.update(i for i, w in trained.items() if w >= purchase)

    # Live events, then session items: (item id, weight, owns), looked up in one call.
    entries = [
        (e.item_id, event_weight(recommender, e.event, e.value), e.event in OWNING_EVENTS) for e in live
    ]
    n_live, session = len(entries), list(session)
    session_weight, session_owns = type_weight(recommender, session_event), session_event in OWNING_EVENTS
    entries += [(item, session_weight, session_owns) for item in session]
    found = recommender.known_ids([item for item, _, _ in entries]).tolist() if entries else []
    for (_, weight, owns), idx in zip(entries, found, strict=True):
        if idx >= 0:
            weights[idx] = max(weight, weights.get(idx, 0.0))
            if owns:
                owned.add(idx)
    unknown = [item for item, idx in zip(session, found[n_live:], strict=True) if idx < 0]
    return History(
        weights=weights,
        owned=frozenset(owned),
        unknown=list(dict.fromkeys(unknown)),
        user_vector=_stored_vector(recommender, user_id, trained, weights),
    )


def _training_weights(recommender: Recommender, user_id: str | None) -> dict[int, float]:
    if user_id is None:
        return {}
    idx, weights = recommender.training_history(user_id)
    return dict(zip(idx.tolist(), weights.tolist(), strict=True))


def _stored_vector(
    recommender: Recommender, user_id: str | None, trained: Mapping[int, float], weights: Mapping[int, float]
) -> np.ndarray | None:
    """The user's precomputed vector (the fold-in of their training history), valid while the
    history's positive weights are exactly the training ones: an impression, a low rating or
    a repeated weaker event leaves it valid; any added weight does not."""
    if user_id is None or _positive(weights) != _positive(trained):
        return None
    return recommender.stored_user_vector(user_id)


def _positive(weights: Mapping[int, float]) -> dict[int, float]:
    return {i: w for i, w in weights.items() if w > 0}
