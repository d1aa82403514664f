"""API keys with roles. reader < writer < admin; keys compared in constant time and never
logged or echoed. No keys configured means no auth (development)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from app.config import Role
from app.errors import Forbidden, Unauthorized

RANK = {Role.reader: 0, Role.writer: 1, Role.admin: 2}


def role_of(key: str, keys: dict[str, Role]) -> Role | None:
    found = None
    for candidate, role in keys.items():
        # Compare against every key so the time taken does not depend on which one matched.
        if hmac.compare_digest(candidate.encode(), key.encode()):
            found = role
    return found


def require(needed: Role, *, for_reads: bool = False):
    """A dependency that admits requests whose X-API-Key has at least ``needed``."""

    async def check(
        request: Request,
        x_api_key: Annotated[str | None, Header(description="API key", include_in_schema=False)] = None,
    ) -> None:
        settings = request.app.state.shoprec.settings
        if not settings.api_keys or (for_reads and not settings.read_requires_key):
            return
        if not x_api_key:
            raise Unauthorized("missing API key: send it in the X-API-Key header")
        role = role_of(x_api_key, settings.api_keys)
        if role is None:
            raise Unauthorized("invalid API key")
        if RANK[role] < RANK[needed]:
            raise Forbidden(f"this operation needs the {needed.value} role; the key has {role.value}")

    return Depends(check)


READER = require(Role.reader, for_reads=True)
WRITER = require(Role.writer)
ADMIN = require(Role.admin)
