"""Pages the app serves beside its JSON API: the API documentation (always) and the demo
storefront (with SHOPREC_DEMO). Static files only, shipped in this package: no CDN, no build
step."""

from __future__ import annotations

from fastapi import FastAPI

from app.config import Settings
from app.web import docs, storefront


def install(app: FastAPI, settings: Settings) -> None:
    docs.install(app)
    if settings.demo:
        storefront.install(app)
