"""Fuzz the API from its own OpenAPI document with schemathesis, against a real server.

    python scripts/fuzz.py [--artifacts DIR] [--max-examples 300] [--seed N]

Starts one uvicorn worker (admin key, its own Redis key prefix) on the model in
DIR/current, runs every schemathesis phase (examples, coverage, fuzzing, stateful) and
every check on every operation (exceptions: schemathesis.toml), prints its report and the
number of cases, and exits with its exit code. Needs Redis at SHOPREC_FUZZ_REDIS_URL
(default redis://127.0.0.1:6379/14). `make fuzz` runs it at 300 examples per operation;
CI runs a short version (tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.server import ADMIN_KEY, running_server  # noqa: E402

# A query string has no types: "?category=false" is a boolean to the fuzzer's negative mode
# and a valid category name to the API (ids are any printable text). So this operation runs
# apart, without that one check (a [[operations]] block in schemathesis.toml did not
# always take effect).
QUERY_LISTS = "GET /v1/users/{user_id}/recommendations"
RUNS = (
    ("--exclude-name", QUERY_LISTS),
    ("--include-name", QUERY_LISTS, "--exclude-checks", "negative_data_rejection"),
)


def fuzz(artifacts_dir: Path, *, max_examples: int, seed: int | None, redis_url: str) -> tuple[int, int]:
    """Run schemathesis; returns (its worst exit code, test cases generated)."""
    prefix = f"shoprec-fuzz:{uuid.uuid4().hex[:8]}"
    command = [
        shutil.which("schemathesis") or "schemathesis",
        *("run", "--checks", "all", "--max-examples", str(max_examples)),
        *("--header", f"X-API-Key: {ADMIN_KEY}", "--no-color"),
        *(("--seed", str(seed)) if seed is not None else ()),
    ]
    code = cases = 0
    try:
        with running_server(artifacts_dir, redis_url=redis_url, prefix=prefix) as base:
            for selection in RUNS:
                run = subprocess.run(
                    [*command, *selection, f"{base}/openapi.json"], cwd=ROOT, capture_output=True, text=True
                )
                print(run.stdout, run.stderr, sep="\n")
                generated = re.search(r"(\d+) generated", run.stdout)
                code, cases = max(code, run.returncode), cases + (int(generated.group(1)) if generated else 0)
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    return code, cases


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=ROOT / "build/artifacts")
    parser.add_argument("--max-examples", type=int, default=300, help="per operation and phase")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    redis_url = os.environ.get("SHOPREC_FUZZ_REDIS_URL", "redis://127.0.0.1:6379/14")
    code, cases = fuzz(args.artifacts, max_examples=args.max_examples, seed=args.seed, redis_url=redis_url)
    print(f"fuzz: {cases} test cases, schemathesis exit code {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
