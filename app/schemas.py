"""Request and response bodies (pydantic v2). Limits come from Settings at validation time
through ``context``-free defaults here; the routers enforce the configured maxima."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from app.events import Event
from app.scoring.history import ExcludeHistory
from app.scoring.recommender import SimilarBy, Strategy

# Ids are 1-128 printable characters (no control characters: they break logs and CSV exports).
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
ID_MAX_LENGTH = 128
Id = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN, examples=["85123A"])]


def _integral(value: Any) -> Any:
    """60.0 is an integer to JSON Schema (what the OpenAPI document promises), so it is one here."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# JSON numbers and booleans are taken as they are: "10" is not an int, 0 is not a bool, 10.5
# is not a count (10.0 is: JSON Schema's integer).
Count = Annotated[int, Field(strict=True), BeforeValidator(_integral)]
# A count's bounds inside ``X | None`` go on the type itself, or the schema loses them.
Position = Annotated[int, Field(strict=True, ge=0, le=999), BeforeValidator(_integral)]
Flag = Annotated[bool, Field(strict=True)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filters(Input):
    category: list[Id] | None = Field(None, max_length=100, examples=[["mugs"]])
    brand: list[Id] | None = Field(None, max_length=100)
    min_price: Number | None = Field(None, ge=0)
    max_price: Number | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _price_range(self) -> Filters:
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError("min_price must not exceed max_price")
        return self


# What the two recommendation routes share, in their OpenAPI descriptions.
EXCLUDE_HISTORY = (
    "which items of the shopper's history are never recommended: purchased (default) the items "
    "they own (purchase or rating events; in the training history, items at the purchase weight); "
    "seen every history item (views and impressions too); none nothing"
)
EXCLUDE = "item ids never to recommend, besides the history policy (unknown ids are ignored)"
EXPLAIN = "per item, the history items that led to it (personalized lists only)"
DIVERSITY = (
    "0 (default): the most relevant items; up to 1: each next item trades relevance for being "
    "unlike the items above it (maximal marginal relevance over the collaborative item "
    "embeddings, among the 5k best items that pass the filters)"
)
BOOST = (
    "business rules, applied after relevance: attribute (category or brand) -> value -> factor. "
    "Relevance is rescaled to [0.01, 1] over the 5k best items and multiplied by the factors of "
    "the values an item has, so a factor > 1 can only move an item up and < 1 only down "
    "(0 puts it last), whatever the sign of the scores"
)
EXPLORATION = (
    "share (0-1) of the k slots for items with little exposure (new catalog items, items few "
    "shoppers had in training) that have not been shown often yet, the best for this shopper by "
    "the collaborative score (new items: from their attributes); marked `explored`. Default: "
    "the server's SHOPREC_EXPLORATION (0 unless configured)"
)
Factor = Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)]
Boosts = dict[Literal["category", "brand"], Annotated[dict[Id, Factor], Field(max_length=100)]]


class RecommendationRequest(Input):
    user_id: Id | None = Field(
        None, description="a shopper: their training history and live feedback join the session items"
    )
    items: list[Id] = Field(
        default_factory=list, max_length=1000, description="session items, as `items_event` events"
    )
    items_event: Event = Field(
        Event.purchase,
        description="the event type the session items stand for: it sets their weight and whether "
        "the shopper owns them (purchase, rating: hidden by exclude_history=purchased)",
    )
    k: Count = Field(10, ge=1, le=1000)
    exclude_history: ExcludeHistory = Field(ExcludeHistory.purchased, description=EXCLUDE_HISTORY)
    exclude: list[Id] = Field(default_factory=list, max_length=1000, description=EXCLUDE)
    filters: Filters | None = None
    explain: Flag = Field(False, description=EXPLAIN)
    diversity: Number = Field(0.0, ge=0, le=1, description=DIVERSITY)
    boost: Boosts = Field(default_factory=dict, description=BOOST, examples=[{"brand": {"acme": 1.2}}])
    exploration: Number | None = Field(None, ge=0, le=1, description=EXPLORATION)
    session_id: Id | None = Field(
        None,
        description="an anonymous visitor's session: assigns them to an experiment's variant (when "
        "there is no user_id) and names them in attribution; send it as the user_id of their feedback",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": ["P00001", "P00042"],
                    "items_event": "view",
                    "k": 10,
                    "exclude_history": "seen",
                    "session_id": "s-8f2c",
                },
                {"user_id": "17850", "k": 10, "diversity": 0.3, "boost": {"category": {"mugs": 1.5}}},
            ]
        },
    )


class RecommendedItem(BaseModel):
    item_id: str
    score: float = Field(
        description="the item's relevance, higher is better; its meaning depends on the answer's "
        "strategy: personalized, the blend of the models' scores, each standardised over the "
        "catalog for this request (a weighted sum of z-scores, comparable within one answer only); "
        "popular, the number of training shoppers who interacted with the item (0 for items added "
        "since). With diversity or boost the list is in re-ranked order, so scores need not fall"
    )
    title: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    because: list[str] | None = Field(None, description="with explain: the history items behind it")
    explored: bool = Field(False, description="shown in an exploration slot (see `exploration`)")


class RecommendationResponse(BaseModel):
    items: list[RecommendedItem]
    model_version: str
    strategy: Strategy = Field(
        description="personalized: scored from the shopper's history; popular: no usable history"
    )
    unknown_items: list[str] = Field(default_factory=list, description="session items not in the catalog")
    live_feedback: bool = Field(True, description="false when Redis could not be read")
    recommendation_id: str = Field(
        description="this list's id: send it, with the item's position, in the feedback on its items"
    )
    experiment_id: str | None = Field(None, description="the running experiment the shopper is in")
    variant: str | None = Field(None, description="their variant in it ('holdout': the defaults, held out)")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [{"item_id": "P00007", "score": 3.1, "title": "Elm rose mug"}],
                    "model_version": "v20261127T120000-abcd1234",
                    "strategy": "personalized",
                    "unknown_items": [],
                    "live_feedback": True,
                    "recommendation_id": "3f9a0c2e7b1d4e5f8a6b9c0d1e2f3a4b",
                    "experiment_id": "blend-2026-11",
                    "variant": "ease-heavy",
                }
            ]
        }
    )


class SimilarItem(BaseModel):
    item_id: str
    score: float = Field(
        description="cosine similarity in [-1, 1] of the two items' embeddings of the kind `by` names"
    )
    title: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None


class SimilarResponse(BaseModel):
    item_id: str
    by: SimilarBy = Field(
        description="collaborative: learned from who interacted with what (new items get one from "
        "their attributes); content: from the item's attributes"
    )
    items: list[SimilarItem]
    model_version: str


class Item(BaseModel):
    item_id: str
    title: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    attributes: list[str] = Field(default_factory=list)
    popularity: float = 0.0
    available: bool = True

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"item_id": "P00007", "title": "Elm rose mug", "category": "mugs", "price": 6.5}]
        }
    )


class ItemUpdate(Input):
    """A catalog entry written between trainings (PUT replaces the whole entry)."""

    title: str | None = Field(None, max_length=500)
    category: Id | None = None
    brand: Id | None = None
    price: Number | None = Field(None, ge=0)
    available: Flag = True
    attributes: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=200, description="free attributes such as 'color=red'"
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"title": "Elm rose mug", "category": "mugs", "brand": "Elm", "price": 6.5}]
        },
    )


# Accept timestamps in the years 2000-2099: outside that, a client clock is broken. The
# schema says so too (a year pattern on ISO strings, bounds on epoch seconds).
MIN_TS, MAX_TS = 946_684_800.0, 4_102_444_800.0
TIMESTAMP_RULE = "timestamp must be an ISO-8601 date-time or epoch seconds in the years 2000-2099"
_datetime = TypeAdapter(datetime)


def _epoch_seconds(value: Any) -> float:
    if isinstance(value, str):
        try:
            moment = _datetime.validate_python(value)
        except ValidationError:
            raise ValueError(TIMESTAMP_RULE) from None
        if 2000 <= moment.year <= 2099:
            return moment.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool) and MIN_TS <= value < MAX_TS:
        return float(value)
    raise ValueError(TIMESTAMP_RULE)


Timestamp = Annotated[
    float,
    PlainValidator(_epoch_seconds),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time", "pattern": "^20[0-9]{2}-"},
                {"type": "number", "minimum": MIN_TS, "exclusiveMaximum": MAX_TS},
            ]
        }
    ),
]


class FeedbackEvent(Input):
    user_id: Id
    item_id: Id
    event: Event = Field(
        description="view < click < add_to_cart < purchase in weight; rating (needs value) counts from "
        "4 stars; purchase and rating mean the shopper owns the item; impression (an item shown) is "
        "recorded and archived but is not a training signal"
    )
    value: Number | None = Field(None, description="rating 1-5, or quantity")
    timestamp: Timestamp | None = Field(None, description="ISO-8601 or epoch seconds, years 2000-2099")
    event_id: Id | None = Field(None, description="idempotency key; generated when absent")
    recommendation_id: Id | None = Field(
        None, description="the list the item was shown in (its response's recommendation_id): attribution"
    )
    position: Position | None = Field(None, description="the item's 0-based position in that list")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"user_id": "U00001", "item_id": "P00007", "event": "purchase", "event_id": "e-1"},
                {
                    "user_id": "U00001",
                    "item_id": "P00007",
                    "event": "click",
                    "recommendation_id": "3f9a0c2e7b1d4e5f8a6b9c0d1e2f3a4b",
                    "position": 0,
                },
            ],
            # The rules below, in the schema (JSON Schema if/then, OpenAPI 3.1).
            "allOf": [
                {
                    "if": {"properties": {"event": {"const": "rating"}}},
                    "then": {
                        "required": ["value"],
                        "properties": {"value": {"type": "number", "minimum": 1, "maximum": 5}},
                    },
                },
                {
                    "if": {"required": ["position"], "properties": {"position": {"type": "integer"}}},
                    "then": {
                        "required": ["recommendation_id"],
                        "properties": {"recommendation_id": {"type": "string"}},
                    },
                },
            ],
        },
    )

    @model_validator(mode="after")
    def _rating_value(self) -> FeedbackEvent:
        if self.event == Event.rating and (self.value is None or not 1 <= self.value <= 5):
            raise ValueError("a rating event needs value between 1 and 5")
        if self.position is not None and self.recommendation_id is None:
            raise ValueError("position needs the recommendation_id of the list it is a position in")
        return self


class FeedbackBatch(Input):
    events: list[FeedbackEvent] = Field(min_length=1, max_length=1000)


ACCEPTED = "events acknowledged by this answer: stored now or by an earlier request with the same event_id"
DUPLICATES = "how many of the accepted events were already stored (a retried event_id); stored once"


class FeedbackAccepted(BaseModel):
    accepted: int = Field(1, description=ACCEPTED)
    duplicates: int = Field(0, ge=0, le=1, description=DUPLICATES)
    event_id: str = Field(description="the event's idempotency key (generated when the request had none)")


class BatchAccepted(BaseModel):
    accepted: int = Field(description=ACCEPTED)
    duplicates: int = Field(description=DUPLICATES)
    event_ids: list[str] = Field(description="per event, in request order, its idempotency key")


class ModelInfo(BaseModel):
    model_version: str
    created_at: str | None
    data_fingerprint: str | None
    counts: dict[str, Any]
    metrics: dict[str, Any]
    blend_weights: dict[str, float]
    last_refused: str | None = Field(None, description="why the last new version was refused")


class Readiness(BaseModel):
    """A model is loaded: this process can serve recommendations."""

    status: Literal["ready"] = "ready"
    model_version: str
    redis: Literal["up", "down"] = Field(description="down: feedback answers 503, recommendations go on")
    degraded: bool = Field(description="true while Redis is down (no live feedback, no feedback intake)")


class VersionInfo(BaseModel):
    model_version: str
    created_at: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict, description="test metrics of the blend")
    counts: dict[str, Any] = Field(default_factory=dict)
    published: bool = Field(
        description="ever switched to as current (false: kept on disk by the quality gate, or never used)"
    )


class ModelVersions(BaseModel):
    current: str | None = Field(description="the version DIR/current points at")
    serving: str | None = Field(description="the version this process serves")
    last_refused: str | None = Field(None, description="why the last version this process tried was refused")
    versions: list[VersionInfo]


NOTIFIED = (
    "false when the other API processes could not be told (Redis down): each loads DIR/current "
    "when it reconnects"
)


class Reloaded(BaseModel):
    serving: str = Field(description="the version now serving (DIR/current)")
    previous: str | None = Field(description="the version served before")
    notified: bool = Field(description=NOTIFIED)


class RolledBack(BaseModel):
    rolled_back_to: str = Field(description="the version published before, now current and serving")
    previous: str | None = Field(description="the version served before")
    notified: bool = Field(description=NOTIFIED)


class DemoShopper(BaseModel):
    user_id: str
    interactions: int = Field(description="items in the shopper's training history")
    categories: list[str] = Field(description="the categories they bought most, most first")


class DemoShop(BaseModel):
    """What the demo storefront offers besides the API: shoppers to pick, category filter."""

    shoppers: list[DemoShopper]
    categories: list[str]
    model_version: str
