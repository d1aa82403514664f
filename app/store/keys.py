"""Every Redis key name is built here. ``{user}`` hash tags keep one user's keys on one
cluster slot; the prefix carries a schema version so data can migrate."""

from __future__ import annotations


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def events_stream(self) -> str:
        """Append-only record of every accepted event (the retraining input)."""
        return f"{self.prefix}:events"

    def recent(self, user_id: str) -> str:
        """Bounded list of the user's latest events (live personalization)."""
        return f"{self.prefix}:user:{{{user_id}}}:recent"

    def seen_event(self, user_id: str, event_id: str) -> str:
        """Idempotency marker of one event id (expires)."""
        return f"{self.prefix}:user:{{{user_id}}}:event:{event_id}"
