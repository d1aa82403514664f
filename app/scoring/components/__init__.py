"""Blend components, in the order they run: a later component may read what an earlier one
set when the catalog changes (the VAE maps the content embedding of a new item).

Adding a component: one file here (a :class:`~app.scoring.components.base.Component`), one
in ``models/components/`` (its training), and a config section.
"""

from __future__ import annotations

from app.scoring.components.base import ArraySpec, Component, per_item
from app.scoring.components.content import Content
from app.scoring.components.ease import ItemItem
from app.scoring.components.vae import VAE

REGISTRY: dict[str, type[Component]] = {c.name: c for c in (Content, VAE, ItemItem)}

__all__ = ["REGISTRY", "ArraySpec", "Component", "per_item"]
