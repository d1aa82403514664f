"""API keys with roles. reader < writer < admin; keys compared in constant time and never
logged or echoed. No keys configured means no auth (development)."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.security import APIKeyHeader

from app.config import Role, Settings
from app.errors import Forbidden, Unauthorized

RANK = {Role.reader: 0, Role.writer: 1, Role.admin: 2}


def role_of(key: str, keys: dict[str, Role]) -> Role | None:
    found = None
    for candidate, role in keys.items():
        # Compare against every key so the time taken does not depend on which one matched.
        if hmac.compare_digest(candidate.encode(), key.encode()):
            found = role
    return found


# The OpenAPI security scheme (the Swagger UI's "Authorize" button) of every route that takes
# a key. auto_error=False: whether a key is needed depends on the settings, checked below.
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKeyAuth",
    description="API key with the role the operation needs (reader < writer < admin)",
    auto_error=False,
)


def require(needed: Role, *, for_reads: bool = False):
    """A dependency that admits requests whose X-API-Key has at least ``needed``."""

    async def check(
        request: Request,
        # The role, as OpenAPI 3.1 allows for apiKey schemes: {"ApiKeyAuth": ["writer"]}. A default
        # value, not Annotated: string annotations cannot see the closure's ``needed``.
        x_api_key: str | None = Security(API_KEY_HEADER, scopes=[needed.value]),
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


def key_required(settings: Settings, needed: Role) -> bool:
    """Whether this deployment refuses a request of role ``needed`` that has no key."""
    if not settings.api_keys:
        return False
    return needed != Role.reader or settings.read_requires_key


def document_security(app: FastAPI, settings: Settings) -> None:
    """Say in the OpenAPI document what this deployment requires: an operation whose key is
    optional here (reads without ``read_requires_key``, everything without keys) lists the
    empty requirement ``{}`` beside ``ApiKeyAuth``, as OpenAPI spells "optional"."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            for operations in spec["paths"].values():
                for operation in operations.values():
                    # A writer route of a reader router lists both roles: keep the one it needs.
                    roles = {r for rule in operation.get("security", []) for r in rule.get("ApiKeyAuth", [])}
                    if roles:
                        needed = max((Role(r) for r in roles), key=RANK.__getitem__)
                        rule = {"ApiKeyAuth": [needed.value]}
                        operation["security"] = [rule] if key_required(settings, needed) else [{}, rule]
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
