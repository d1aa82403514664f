"""Request and response bodies (pydantic v2). Limits come from Settings at validation time
through ``context``-free defaults here; the routers enforce the configured maxima."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Id = Annotated[str, Field(min_length=1, max_length=128, examples=["85123A"])]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filters(Input):
    category: list[Id] | None = Field(None, max_length=100, examples=[["mugs"]])
    brand: list[Id] | None = Field(None, max_length=100)
    min_price: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_price: float | None = Field(None, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _price_range(self) -> Filters:
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError("min_price must not exceed max_price")
        return self


class RecommendationRequest(Input):
    user_id: Id | None = None
    items: list[Id] = Field(default_factory=list, max_length=1000, description="session history")
    k: int = Field(10, ge=1, le=1000)
    exclude_seen: bool = True
    exclude: list[Id] = Field(default_factory=list, max_length=1000)
    filters: Filters | None = None
    explain: bool = False

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
    price: float | None = Field(None, ge=0, allow_inf_nan=False)
    available: bool = True
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


# Accept timestamps between 2000-01-01 and 2100-01-01: outside that, a client clock is broken.
MIN_TS, MAX_TS = 946_684_800.0, 4_102_444_800.0


class FeedbackEvent(Input):
    user_id: Id
    item_id: Id
    event: Event
    value: float | None = Field(None, allow_inf_nan=False, description="rating 1-5, or quantity")
    timestamp: datetime | float | None = Field(None, description="ISO-8601 or epoch seconds")
    event_id: Id | None = Field(None, description="idempotency key; generated when absent")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"user_id": "U00001", "item_id": "P00007", "event": "purchase", "event_id": "e-1"}]
        },
    )

    @field_validator("timestamp")
    @classmethod
    def _epoch(cls, value: datetime | float | None) -> float | None:
        if value is None:
            return None
        seconds = value.timestamp() if isinstance(value, datetime) else float(value)
        if not math.isfinite(seconds) or not MIN_TS <= seconds <= MAX_TS:
            raise ValueError("timestamp must be between 2000-01-01 and 2100-01-01")
        return seconds

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
