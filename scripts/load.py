"""A load generator for shoprec over plain HTTP/1.1 keep-alive connections (tools/load.py).

    python scripts/load.py --url http://127.0.0.1:8000 [--rate 200 | max] [--seconds 30]
        [--connections 32] [--mix recommend=80,feedback=15,similar=5] [--api-key KEY]
        [--artifacts build/artifacts]

Mixed traffic (user and session recommendations, single feedback events, similar items)
drawn from the ids of the model in --artifacts. Prints throughput, errors by status and
latency percentiles; exit code 1 if any request was not answered 2xx.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.load import main

if __name__ == "__main__":
    sys.exit(main())
