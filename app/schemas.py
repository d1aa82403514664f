"""Request and response bodies (pydantic v2). Limits come from Settings at validation time
through ``context``-free defaults here; the routers enforce the configured maxima."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

# Ids are 1-128 printable characters (no control characters: they break logs and CSV exports).
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN, examples=["85123A"])]
# JSON numbers and booleans are taken as they are: "10" is not an int, 0 is not a bool.
Count = Annotated[int, Field(strict=True)]
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


class RecommendationRequest(Input):
    user_id: Id | None = None
    items: list[Id] = Field(default_factory=list, max_length=1000, description="session history")
    k: Count = Field(10, ge=1, le=1000)
    exclude_seen: Flag = True
    exclude: list[Id] = Field(default_factory=list, max_length=1000)
    filters: Filters | None = None
    explain: Flag = False

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"items": ["P00001", "P00042"], "k": 10, "exclude_seen": True}]},
    )


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    title: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    because: list[str] | None = None


class RecommendationResponse(BaseModel):
    items: list[RecommendedItem]
    model_version: str
    strategy: str = Field(examples=["personalized"], description="personalized | popular")
    unknown_items: list[str] = Field(default_factory=list)
    live_feedback: bool = Field(True, description="false when Redis could not be read")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [{"item_id": "P00007", "score": 3.1, "title": "Elm rose mug"}],
                    "model_version": "v20261127T120000-abcd1234",
                    "strategy": "personalized",
                    "unknown_items": [],
                    "live_feedback": True,
                }
            ]
        }
    )


class SimilarResponse(BaseModel):
    item_id: str
    by: str
    items: list[RecommendedItem]
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


class Event(StrEnum):
    view = "view"
    click = "click"
    add_to_cart = "add_to_cart"
    purchase = "purchase"
    rating = "rating"


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
    event: Event
    value: Number | None = Field(None, description="rating 1-5, or quantity")
    timestamp: Timestamp | None = Field(None, description="ISO-8601 or epoch seconds, years 2000-2099")
    event_id: Id | None = Field(None, description="idempotency key; generated when absent")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"user_id": "U00001", "item_id": "P00007", "event": "purchase", "event_id": "e-1"}],
            # The rating rule below, in the schema (JSON Schema if/then, OpenAPI 3.1).
            "if": {"properties": {"event": {"const": "rating"}}},
            "then": {
                "required": ["value"],
                "properties": {"value": {"type": "number", "minimum": 1, "maximum": 5}},
            },
        },
    )

    @model_validator(mode="after")
    def _rating_value(self) -> FeedbackEvent:
        if self.event == Event.rating and (self.value is None or not 1 <= self.value <= 5):
            raise ValueError("a rating event needs value between 1 and 5")
        return self


class FeedbackBatch(Input):
    events: list[FeedbackEvent] = Field(min_length=1, max_length=1000)


class FeedbackAccepted(BaseModel):
    accepted: bool = True
    event_id: str
    duplicate: bool = False


class BatchAccepted(BaseModel):
    accepted: int
    duplicates: int
    event_ids: list[str]


class ModelInfo(BaseModel):
    model_version: str
    created_at: str | None
    data_fingerprint: str | None
    counts: dict[str, Any]
    metrics: dict[str, Any]
    blend_weights: dict[str, float]
    last_refused: str | None = Field(None, description="why the last new version was refused")


class DemoShopper(BaseModel):
    user_id: str
    interactions: int = Field(description="items in the shopper's training history")
    categories: list[str] = Field(description="the categories they bought most, most first")


class DemoShop(BaseModel):
    """What the demo storefront offers besides the API: shoppers to pick, category filter."""

    shoppers: list[DemoShopper]
    categories: list[str]
    model_version: str
