"""Service configuration: environment variables with the ``SHOPREC_`` prefix (see .env.example)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Role(StrEnum):
    reader = "reader"
    writer = "writer"
    admin = "admin"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPREC_", env_file=".env", extra="ignore")

    artifacts_dir: Path = Field(Path("build/artifacts"), description="serves DIR/current")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="feedback store")
    redis_cluster: bool = Field(False, description="SHOPREC_REDIS_URL names a Redis Cluster node")
    redis_prefix: str = Field("shoprec:v1", description="key prefix (tests isolate with it)")
    redis_shards: int = Field(16, ge=1, le=1024, description="event streams (hash-tag shards)")
    redis_timeout_s: float = Field(0.5, gt=0, le=30, description="per-command Redis timeout")
    retry_after_s: int = Field(5, ge=1, le=3600, description="Retry-After on 503")
    recent_events: int = Field(200, ge=1, le=10_000, description="per-user live history cap")
    recent_ttl_s: int = Field(30 * 86_400, ge=60, description="per-user live history TTL")
    idempotency_ttl_s: int = Field(7 * 86_400, ge=60, description="event_id dedup window")
    max_k: int = Field(1000, ge=1, le=100_000)
    max_history: int = Field(1000, ge=1, le=100_000)
    max_id_length: int = Field(128, ge=1, le=4096)
    max_batch: int = Field(1000, ge=1, le=100_000)
    max_body_bytes: int = Field(1_000_000, ge=1024, description="larger bodies get 413")
    rate_limit_per_s: float = Field(0, ge=0, description="per-client requests/s; 0 = off")
    rate_limit_burst: int = Field(20, ge=1, description="requests a client may send at once")
    cors_origins: list[str] = Field(default_factory=list, description="off when empty")
    log_requests: bool = True
    fast_route: bool = Field(
        True, description="POST /v1/recommendations past FastAPI's routing and body handling (app.fastpath)"
    )
    # API keys: {"key": "reader" | "writer" | "admin"} as JSON. Empty = no auth (development).
    api_keys: dict[str, Role] = Field(default_factory=dict, repr=False)
    read_requires_key: bool = Field(False, description="reads need a reader key too")
    # Exploration: slots for items with little exposure (app.scoring.recommender.Explore).
    exploration: float = Field(0.0, ge=0, le=1, description="share of the slots when a request does not say")
    explore_max_popularity: int = Field(2, ge=0, description="at most this many training shoppers: explored")
    explore_exposure_cap: int = Field(1000, ge=1, description="shown this often: not explored again")
    explore_refresh_s: float = Field(5.0, ge=0, le=3600, description="how often the cap set is reread")
    demo: bool = Field(False, description="serve the demo storefront at /demo (make demo turns it on)")
    # Attribution and experiments (docs/experiments.md).
    attribution: bool = Field(True, description="record each answered list; attribute feedback to it")
    implicit_impressions: bool = Field(False, description="record every answered item as an impression")
    recommendation_ttl_s: int = Field(
        2 * 86_400, ge=60, description="how long a list's feedback is attributed"
    )
    experiment_ttl_s: int = Field(
        90 * 86_400, ge=3600, description="experiment counters' TTL since last event"
    )
    experiments_refresh_s: float = Field(
        1.0, gt=0, le=60, description="how often a process re-reads experiments"
    )
    experiments_file: Path | None = Field(None, description="JSON list of experiments stored at start-up")
    experiment_min_users: int = Field(100, ge=2, description="users per group before significance is claimed")
    experiment_min_events: int = Field(20, ge=1, description="outcome events per group, likewise")

    @field_validator("experiments_file", mode="before")
    @classmethod
    def _no_file(cls, value: object) -> object:
        return None if value == "" else value  # SHOPREC_EXPERIMENTS_FILE= (as in .env.example)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("SHOPREC_REDIS_URL must start with redis://, rediss:// or unix://")
        return value
