"""Configured request limits. The schemas carry the hard maxima (k <= 1000, ids <= 128
characters, history and batch <= 1000); Settings can lower them for a deployment."""

from __future__ import annotations

from collections.abc import Iterable

from app.config import Settings
from app.errors import InvalidRequest


def check(
    settings: Settings,
    *,
    k: int | None = None,
    history: int = 0,
    batch: int = 0,
    ids: Iterable[tuple[str, str]] = (),
) -> None:
    """Raise InvalidRequest naming the field over its configured limit.

    ids: (field name, value) pairs.
    """
    if k is not None and k > settings.max_k:
        raise InvalidRequest(f"k must be at most {settings.max_k}", [{"loc": ["k"]}])
    if history > settings.max_history:
        raise InvalidRequest(f"at most {settings.max_history} history items", [{"loc": ["items"]}])
    if batch > settings.max_batch:
        raise InvalidRequest(f"at most {settings.max_batch} events per batch", [{"loc": ["events"]}])
    for name, value in ids:
        if len(value) > settings.max_id_length:
            raise InvalidRequest(f"{name} longer than {settings.max_id_length} characters", [{"loc": [name]}])
