"""Domain errors and the one map that turns them into HTTP responses.

Every error response has the body ``{"error": {"code", "message", "details"}}``.

ShoprecError                  base; never raised itself
├── Unauthorized (401)        no or unknown API key
├── Forbidden (403)           the key's role is too low
├── InvalidRequest (422)      a request within the schema but over a configured limit
├── NotFound (404)            a named item/user/version that must exist does not
│   └── ItemNotFound
├── VersionRefused (409)      a model version failed validation; the serving one stays
├── Conflict (409)            the experiment's state does not allow the change (e.g. one
│                             is running already, or a started one is redefined)
├── StoreUnavailable (503)    Redis did not answer in time; sent with Retry-After
│   └── StoreFailed           Redis answered with an error (OOM, READONLY, MOVED/TRYAGAIN)
├── ArtifactsUnavailable (503) the artifacts directory could not be read
└── ModelNotLoaded (503)      no artifact is loaded yet
A body that is not JSON (syntax, invalid UTF-8, nested too deeply) -> 400 ``invalid_json``;
request validation (pydantic) -> 422 with the offending fields in ``details``; a body that
is not ``application/json`` -> 415; bodies over the limit -> 413 (both app.observability);
a method the path does not have -> 405 with ``Allow``; a client over the rate limit -> 429
``rate_limited`` with Retry-After (app.ratelimit); anything else -> 500 ``internal``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import Send

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


class VersionRefused(ShoprecError):
    status, code = 409, "version_refused"


class Conflict(ShoprecError):
    status, code = 409, "conflict"


class InvalidRequest(ShoprecError):
    status, code = 422, "validation_error"


class StoreUnavailable(ShoprecError):
    status, code = 503, "store_unavailable"


class StoreFailed(StoreUnavailable):
    code = "store_error"


class ArtifactsUnavailable(ShoprecError):
    status, code = 503, "artifacts_unavailable"


class ModelNotLoaded(ShoprecError):
    status, code = 503, "model_not_loaded"


NOT_JSON = "the request body could not be parsed: send UTF-8 encoded JSON that is not nested too deeply"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


async def send_error(
    send: Send, status: int, code: str, message: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with the error body from ASGI middleware, before the app is reached."""
    body = json.dumps(error_body(code, message)).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


DESCRIPTIONS = {
    400: "Body is not valid JSON",
    401: "No or unknown API key",
    403: "The key's role is too low",
    404: "Not found",
    409: "Refused, nothing changed: the model version failed validation, or the experiment's state "
    "does not allow the change",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Invalid request",
    503: "Redis or the model is unavailable; retry after Retry-After seconds",
}
BODY_ERRORS = (400, 413, 415, 422)  # what any route that reads a JSON body can answer

Responses = dict[int | str, dict[str, Any]]


def responses(*codes: int) -> Responses:
    """The OpenAPI ``responses=`` map of a route's error codes."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in sorted(set(codes))}


def allowed_methods(request: Request) -> set[str]:
    """Every method the API documents for this path (Starlette's 405 names one route's)."""
    app = request.app
    if not hasattr(app.state, "methods_by_path"):
        app.state.methods_by_path = [
            (compile_path(path)[0], {method.upper() for method in operations})
            for path, operations in app.openapi()["paths"].items()
        ]
    path = request.url.path
    return {m for regex, methods in app.state.methods_by_path if regex.match(path) for m in methods}


def install(
    app: FastAPI, *, retry_after_s: int, on_store_error: Callable[[StoreUnavailable, str], None]
) -> None:
    """The one map from exceptions to answers. ``on_store_error(exc, "METHOD path")`` is told
    of every Redis failure that reaches a client (to log and count it)."""

    @app.exception_handler(ShoprecError)
    async def _domain(request: Request, exc: ShoprecError) -> JSONResponse:
        if isinstance(exc, StoreUnavailable):
            on_store_error(exc, f"{request.method} {request.url.path}")
        headers = {"Retry-After": str(retry_after_s)} if exc.status == 503 else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "ApiKey"}
        return JSONResponse(error_body(exc.code, exc.message, exc.details), exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return JSONResponse(error_body("invalid_json", NOT_JSON), 400)
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
        message, headers = str(exc.detail), dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 400:  # FastAPI could not decode the body (UTF-8, nesting depth)
            code, message = "invalid_json", NOT_JSON
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(sorted(allowed_methods(request)))
        return JSONResponse(error_body(code, message), exc.status_code, headers=headers or None)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal", "internal server error"), 500)
