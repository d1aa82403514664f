"""The real process: uvicorn over real HTTP, and no TensorFlow in the serving process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]


def test_serving_never_imports_tensorflow():
    code = (
        "import sys; from app.main import create_app; from app.config import Settings;"
        "create_app(Settings()); import app.scoring.recommender, app.api.recommendations;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'models')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_uvicorn_process_serves_over_http(artifacts_dir, redis_url, prefix, trained):
    result, _ = trained
    port = free_port()
    env = {
        **os.environ,
        "SHOPREC_ARTIFACTS_DIR": str(artifacts_dir),
        "SHOPREC_REDIS_URL": redis_url,
        "SHOPREC_REDIS_PREFIX": prefix,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        items = result.split.item_ids[:3]
        recs = httpx.post(f"{base}/v1/recommendations", json={"items": items, "k": 100, "exclude_seen": True})
        assert recs.status_code == 200
        assert not {i["item_id"] for i in recs.json()["items"]} & set(items)
        fb = httpx.post(f"{base}/v1/feedback", json={"user_id": "proc", "item_id": items[0], "event": "view"})
        assert fb.status_code == 202
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=10)
    assert '"route": "/v1/recommendations"' in out  # JSON access log
