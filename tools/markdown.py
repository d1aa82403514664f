"""Sections of a Markdown report that several scripts write (docs/benchmarks.md)."""

from __future__ import annotations

import re
from pathlib import Path


def replace_section(path: Path, name: str, text: str) -> None:
    """Put ``text`` between ``<!-- name -->`` and ``<!-- /name -->`` in ``path``, replacing
    what was there, or append it; the rest of the file is kept."""
    block = f"<!-- {name} -->\n{text.rstrip()}\n<!-- /{name} -->\n"
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"<!-- {re.escape(name)} -->\n.*?<!-- /{re.escape(name)} -->\n", re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old)
    else:
        new = old + ("\n" if old and not old.endswith("\n\n") else "") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
