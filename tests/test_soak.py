"""The short CI version of the soak (scripts/soak.py; `make soak` runs 10 minutes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_one_minute_soak_has_no_errors(artifacts_dir, tmp_path):
    out = tmp_path / "benchmarks.md"
    run = subprocess.run(
        [
            sys.executable,
            "scripts/soak.py",
            "--artifacts",
            str(artifacts_dir),
            "--minutes",
            "1",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = out.read_text()
    assert "not answered 2xx: **0**" in report and "<!-- /soak -->" in report
