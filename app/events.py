"""Feedback events, defined once for both sides of the artifact: serving (the API schema,
the feedback stream, live personalization, the exclusion policy) and training (``models/``:
cleaning rules, default weights, the archive's columns).

Adding an event type is one entry in ``Event`` and one in ``EVENT_TYPES``; the end-to-end
test (feedback API -> stream -> archive -> retraining's cleaning) covers every entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Event(StrEnum):
    view = "view"
    click = "click"
    add_to_cart = "add_to_cart"
    purchase = "purchase"
    rating = "rating"
    impression = "impression"


@dataclass(frozen=True)
class EventType:
    # Default weight in a user's interaction vector (training may override it; the artifact's
    # manifest records the weights a model was trained with).
    weight: float
    # False: recorded and archived, but never an interaction (cleaning drops it, counted).
    training_signal: bool = True
    # The shopper owns the item afterwards: the ``purchased`` exclusion policy hides it.
    owns: bool = False


EVENT_TYPES: dict[Event, EventType] = {
    Event.view: EventType(weight=1.0),
    Event.click: EventType(weight=2.0),
    Event.add_to_cart: EventType(weight=3.0),
    Event.purchase: EventType(weight=4.0, owns=True),
    # A rating needs a value 1-5; below RATING_THRESHOLD it carries no positive signal.
    Event.rating: EventType(weight=4.0, owns=True),
    # An item shown to the shopper (e.g. in a recommendation list): kept for later analysis.
    Event.impression: EventType(weight=0.0, training_signal=False),
}

# Ratings at or above this are positive (weight of ``rating``); lower ones count for nothing.
RATING_THRESHOLD = 4.0

TRAINING_EVENTS = tuple(e.value for e, t in EVENT_TYPES.items() if t.training_signal)
OWNING_EVENTS = frozenset(e.value for e, t in EVENT_TYPES.items() if t.owns)

# One feedback stream entry (Redis) and one archive row: these fields, in this order.
# Attribution (empty when the event names no recommendation list, or the list's record had
# expired): the list's id and the item's 0-based position in it, as the client sent them;
# the experiment and variant that served the list and the model version that scored it, as
# the service recorded them when it answered (app.store.attribution).
STREAM_FIELDS = (
    "event_id", "user_id", "item_id", "event", "value", "timestamp", "received_at", "model_version",
    "recommendation_id", "position", "experiment_id", "variant", "list_version",
)  # fmt: skip
ATTRIBUTED_FIELDS = ("experiment_id", "variant", "list_version")  # filled from the list's record

# What an experiment counts per user, from attributed events: the exposure (shown items) and
# the outcomes whose rates per shown item it reports (click-through, add-to-cart, conversion).
EXPOSURE = Event.impression.value
OUTCOMES = (Event.click.value, Event.add_to_cart.value, Event.purchase.value)


def default_weights() -> dict[str, float]:
    """Event -> default weight, for the events that are training signals."""
    return {e.value: t.weight for e, t in EVENT_TYPES.items() if t.training_signal}
