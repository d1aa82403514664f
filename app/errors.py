"""Domain errors and the one map that turns them into HTTP responses.

Every error response has the body ``{"error": {"code", "message", "details"}}``.

ShoprecError                  base; never raised itself
├── Unauthorized (401)        no or unknown API key
├── Forbidden (403)           the key's role is too low
├── InvalidRequest (422)      a request within the schema but over a configured limit
├── NotFound (404)            a named item/user that must exist does not
│   └── ItemNotFound
├── StoreUnavailable (503)    Redis did not answer in time; sent with Retry-After
└── ModelNotLoaded (503)      no artifact is loaded yet
Request validation (pydantic) -> 422 with the offending fields in ``details``;
bodies over the limit -> 413 (see app.middleware); anything else -> 500 ``internal``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("shoprec")


class ShoprecError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details


class Unauthorized(ShoprecError):
    status, code = 401, "unauthorized"


class Forbidden(ShoprecError):
    status, code = 403, "forbidden"


class NotFound(ShoprecError):
    status, code = 404, "not_found"


class ItemNotFound(NotFound):
    code = "item_not_found"


class InvalidRequest(ShoprecError):
    status, code = 422, "validation_error"


class StoreUnavailable(ShoprecError):
    status, code = 503, "store_unavailable"


class ModelNotLoaded(ShoprecError):
    status, code = 503, "model_not_loaded"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


ERROR_SCHEMA: dict[str, Any] = {
    "description": "Error",
    "content": {
        "application/json": {
            "example": error_body("item_not_found", "unknown item 'X'", None),
        }
    },
}


Responses = dict[int | str, dict[str, Any]]


def responses(*codes: int) -> Responses:
    """The OpenAPI ``responses=`` map of a route's error codes."""
    return {code: ERROR_SCHEMA for code in codes}


def install(app: FastAPI, *, retry_after_s: int) -> None:
    @app.exception_handler(ShoprecError)
    async def _domain(request: Request, exc: ShoprecError) -> JSONResponse:
        headers = {"Retry-After": str(retry_after_s)} if exc.status == 503 else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "ApiKey"}
        return JSONResponse(error_body(exc.code, exc.message, exc.details), exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()
        ]
        fields = ", ".join(".".join(map(str, d["loc"])) for d in details[:5])
        return JSONResponse(
            error_body("validation_error", f"invalid request: {fields}", jsonable_encoder(details)),
            422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail)),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal", "internal server error"), 500)
