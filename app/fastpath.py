"""POST /v1/recommendations past the framework's layers: the route every storefront page
calls, answered by the same endpoint function without Starlette's routing and FastAPI's
request handling (body reading, dependency solving, validation), which at max throughput
are ~10 % of a request (docs/benchmarks.md, "2026-12-07, late").

An ASGI middleware, the innermost one: the request id, access log, latency metric, body
limit, JSON-only rule, rate limit and CORS still apply, as to every route. It takes only a
request it would answer exactly as FastAPI does: a body that parses as JSON and validates
as the route's body model. Anything else (not JSON, invalid, a trailing slash, another
method) goes on to FastAPI with the body it read, so every error answer is FastAPI's own.
The route stays registered with FastAPI, so the OpenAPI document describes it unchanged.
Errors the endpoint raises are answered by the app's exception handlers (app.errors), as
they would be behind the router.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.routing import get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import auth
from app.config import Role

PATH = "/v1/recommendations"


class FastRoute:
    """``POST PATH`` for ``route``, a reader route whose endpoint takes ``(body, request)``;
    ``handlers`` is the app's exception handler map."""

    def __init__(self, app: ASGIApp, *, route: APIRoute, handlers: dict[Any, Any]) -> None:
        self.app, self.route, self.handlers = app, route, handlers
        assert route.body_field is not None, "the fast route takes a body"
        assert isinstance(route, auth.ReaderRoute), "the fast route checks the reader key as ReaderRoute does"
        self.model: type[BaseModel] = route.body_field.field_info.annotation  # type: ignore[assignment]
        self.endpoint = route.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or get_route_path(scope) != PATH:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # the latency metric's label, as the router sets it
        request = Request(scope, receive)
        body = raw = None
        try:
            auth.check(scope["app"].state.shoprec.settings, request.headers.get("x-api-key"), Role.reader)
            raw = await request.body()
            body = self._parse(raw)
            if body is not None:
                response = await self.endpoint(body, request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # to the server-error middleware, as from behind the router
            response = await handler(request, exc)
        if body is None and raw is not None:  # FastAPI says what is wrong with it
            await self.app(scope, _replay(raw, receive), send)
            return
        await response(scope, receive, send)

    def _parse(self, raw: bytes) -> BaseModel | None:
        """The body as FastAPI reads it (``json.loads``, then the model), or None if it is
        not JSON (syntax, UTF-8, nesting depth) or not valid: FastAPI, reading it again, then
        answers as it does for any route."""
        try:
            return self.model.model_validate(json.loads(raw))
        except Exception:  # ValidationError, JSONDecodeError, UnicodeDecodeError, RecursionError
            return None

    def _handler(self, exc: Exception) -> Any:
        """The app's handler of this exception (its nearest class), but not the catch-all
        ``Exception`` one, which the outermost middleware runs."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in self.handlers:
                return self.handlers[cls]
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out the body already read, then the client's further messages."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def route_of(router: APIRouter) -> APIRoute:
    """``POST PATH`` of ``router``."""
    (route,) = [
        r for r in router.routes if isinstance(r, APIRoute) and (r.path, r.methods) == (PATH, {"POST"})
    ]
    return route


def install(app: FastAPI, router: APIRouter) -> None:
    """Serve ``POST PATH`` of ``router`` through :class:`FastRoute`. Call it before any other
    middleware is added: it must be the innermost."""
    app.add_middleware(FastRoute, route=route_of(router), handlers=app.exception_handlers)
