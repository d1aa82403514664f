"""The short CI run of the API fuzzer (scripts/fuzz.py; `make fuzz` is the long one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_schemathesis_finds_nothing(artifacts_dir, redis_url):
    run = subprocess.run(
        [sys.executable, "scripts/fuzz.py", "--artifacts", str(artifacts_dir), "--max-examples", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "SHOPREC_FUZZ_REDIS_URL": redis_url},
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-5000:]
    cases = int(re.search(r"fuzz: (\d+) test cases", run.stdout).group(1))
    assert cases >= 300, run.stdout[-2000:]
    assert "Tested: 18" in run.stdout and "Tested: 1\n" in run.stdout  # every operation (5 of experiments)
