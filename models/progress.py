"""Progress inside long epochs: at 1M items one epoch of the item autoencoder or the sampled
Mult-VAE takes ten minutes or more, so the per-epoch lines alone leave a long silence."""

from __future__ import annotations

import time
from collections.abc import Callable

EVERY_S = 60.0  # seconds between two lines


class StepProgress:
    """``tick(epoch, step)`` after each training step (epoch and step from 1); logs at most
    every ``every_s`` seconds the step, the rate and the time left for all epochs."""

    def __init__(
        self,
        name: str,
        *,
        epochs: int,
        steps: int,
        log: Callable[[str], None],
        every_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.name, self.epochs, self.steps, self.log, self.clock = name, epochs, steps, log, clock
        self.every_s = EVERY_S if every_s is None else every_s
        self.started = self.last = clock()

    def tick(self, epoch: int, step: int) -> None:
        now = self.clock()
        if now - self.last < self.every_s or step >= self.steps:  # the epoch's own line follows
            return
        self.last = now
        done = (epoch - 1) * self.steps + step
        elapsed = now - self.started
        left = elapsed / done * (self.epochs * self.steps - done)
        self.log(
            f"{self.name} epoch {epoch}/{self.epochs} step {step:,}/{self.steps:,} "
            f"{done / elapsed:.1f} steps/s eta {left:.0f}s"
        )
