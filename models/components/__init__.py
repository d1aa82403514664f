"""Training side of the blend components (serving side: app/scoring/components), by name."""

from __future__ import annotations

from models.components.base import ComponentTrainer
from models.components.content import ContentTrainer
from models.components.ease import ItemItemTrainer
from models.components.vae import VAETrainer

TRAINERS: dict[str, ComponentTrainer] = {
    t.name: t for t in (ContentTrainer(), VAETrainer(), ItemItemTrainer())
}
