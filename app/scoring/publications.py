"""The publish history of an artifacts directory: every version ``DIR/current`` was switched
to, in order, one JSON line per switch in ``DIR/publications.jsonl`` (appended by
``artifact.publish``).

Rollback goes back through this history, never by folder dates: a version the quality gate
refused is on disk but was never published, so it is never a rollback target. Replaying the
history gives the stack of published versions: a publication pushes its version, a rollback
to X pops back to X.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

HISTORY = "publications.jsonl"


@dataclass(frozen=True)
class Publication:
    model_version: str
    published_at: str
    rollback: bool = False


def record(artifacts_dir: Path, version: str, *, rollback: bool = False) -> None:
    """Append one publication (one short line, appended whole, fsynced)."""
    entry = Publication(version, datetime.now(UTC).isoformat(timespec="seconds"), rollback)
    line = (json.dumps(asdict(entry)) + "\n").encode()
    fd = os.open(artifacts_dir / HISTORY, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read(artifacts_dir: Path) -> list[Publication] | None:
    """Every publication, oldest first; None when the directory has no history yet. A line
    that is not a publication (cut short by a crash) is skipped."""
    path = artifacts_dir / HISTORY
    if not path.exists():
        return None
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(Publication(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return out


def published_stack(history: list[Publication]) -> list[str]:
    """The versions a rollback can go back through, the newest last."""
    stack: list[str] = []
    for entry in history:
        if entry.rollback and entry.model_version in stack:
            del stack[len(stack) - stack[::-1].index(entry.model_version) :]
        elif not stack or stack[-1] != entry.model_version:
            stack.append(entry.model_version)
    return stack
