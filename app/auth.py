"""API keys with roles. reader < writer < admin; keys compared in constant time and never
logged or echoed. No keys configured means no auth (development)."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, FastAPI, Request, Response, Security
from fastapi.routing import APIRoute
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


def check(settings: Settings, key: str | None, needed: Role) -> None:
    """Admit a request whose X-API-Key has at least ``needed`` (or that this deployment lets
    in without a key, :func:`key_required`), else raise 401 or 403."""
    if not key_required(settings, needed):
        return
    if not key:
        raise Unauthorized("missing API key: send it in the X-API-Key header")
    role = role_of(key, settings.api_keys)
    if role is None:
        raise Unauthorized("invalid API key")
    if RANK[role] < RANK[needed]:
        raise Forbidden(f"this operation needs the {needed.value} role; the key has {role.value}")


def require(needed: Role):
    """A dependency that admits requests whose X-API-Key has at least ``needed``."""

    async def checked(
        request: Request,
        # The role, as OpenAPI 3.1 allows for apiKey schemes: {"ApiKeyAuth": ["writer"]}. A default
        # value, not Annotated: string annotations cannot see the closure's ``needed``.
        x_api_key: str | None = Security(API_KEY_HEADER, scopes=[needed.value]),
    ) -> None:
        check(request.app.state.shoprec.settings, x_api_key, needed)

    return Depends(checked)


WRITER = require(Role.writer)
ADMIN = require(Role.admin)


READER_SECURITY = {API_KEY_HEADER.scheme_name: [Role.reader.value]}


class ReaderRoute(APIRoute):
    """A route that reads (``route_class`` of the reading routers): the key check of the
    reader role runs before FastAPI handles the request, so a request without a needed key
    is answered 401 whatever its body, as a dependency would. Not a dependency because
    FastAPI's dependency solving cost ~37 us of a ~1.2 ms recommendation (docs/benchmarks.md).
    The OpenAPI operation names the role as a dependency's would (``document_security``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["openapi_extra"] = {**(kwargs.get("openapi_extra") or {}), "security": [READER_SECURITY]}
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def checked(request: Request) -> Response:
            settings = request.app.state.shoprec.settings
            check(settings, request.headers.get("x-api-key"), Role.reader)
            return await handle(request)

        return checked


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
            schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes.setdefault(
                API_KEY_HEADER.scheme_name, API_KEY_HEADER.model.model_dump(by_alias=True, exclude_none=True)
            )
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
