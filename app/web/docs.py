"""Swagger UI at /docs and ReDoc at /redoc, loading their JavaScript and CSS from this app
(``app/web/vendor``: the npm packages swagger-ui-dist and redoc, with their licences, copied by
``scripts/vendor_docs_assets.sh``). FastAPI's own pages load them from a public CDN, which is a
blank page in a closed network."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

VENDOR = Path(__file__).parent / "vendor"
ASSETS = "/docs/assets"


def install(app: FastAPI) -> None:
    """Routes /docs and /redoc and the files they load; the app must be created with
    ``docs_url=None, redoc_url=None`` (FastAPI's CDN pages off)."""
    assert app.openapi_url is not None
    openapi_url = app.openapi_url
    app.mount(ASSETS, StaticFiles(directory=VENDOR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/swagger-ui/favicon-32x32.png",
            # Swagger UI would send the spec to a public validator service for its badge.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{ASSETS}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
