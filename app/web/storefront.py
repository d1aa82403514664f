"""The demo storefront at /demo (SHOPREC_DEMO): one static page whose JavaScript calls the
public API (recommendations with explanations, items, similar items, feedback) plus
GET /v1/demo/shop, so a person can watch feedback change the recommendations."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from app.api import demo

PAGE = Path(__file__).parent / "storefront"
ASSETS = "/demo/assets"


def install(app: FastAPI) -> None:
    app.include_router(demo.router)
    app.mount(ASSETS, StaticFiles(directory=PAGE), name="demo-assets")

    @app.get("/demo", include_in_schema=False)
    async def storefront() -> FileResponse:
        return FileResponse(PAGE / "index.html", headers={"Cache-Control": "no-cache"})
