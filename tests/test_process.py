"""The real process: uvicorn over real HTTP, and no TensorFlow in the serving process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.scoring import artifact
from tools.server import server_env, uvicorn_process

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
    env = server_env(artifacts_dir, redis_url, prefix)
    with uvicorn_process(env) as api:
        base = api.url
        items = result.data.item_ids[:3]
        recs = httpx.post(f"{base}/v1/recommendations", json={"items": items, "k": 100})
        assert recs.status_code == 200
        assert not {i["item_id"] for i in recs.json()["items"]} & set(items)
        fb = httpx.post(f"{base}/v1/feedback", json={"user_id": "proc", "item_id": items[0], "event": "view"})
        assert fb.status_code == 202
        for _ in range(100):  # the JSON access log line, written just after the answer
            if '"route": "/v1/recommendations"' in api.log.read_text():
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no access log line for /v1/recommendations")
        # Having served, the process has mapped neither TensorFlow nor scipy (~15 MB of private
        # memory per worker that serving does not use).
        assert httpx.get(f"{base}/v1/items/{items[0]}/similar?by=content").status_code == 200
        mapped = Path(f"/proc/{api.process.pid}/maps").read_text()
        assert "site-packages/scipy/" not in mapped and "site-packages/tensorflow/" not in mapped
        assert "site-packages/numpy/" in mapped


@pytest.mark.slow
def test_two_processes_share_feedback_and_reloads(artifacts_dir, redis_url, prefix, tmp_path):
    from tests.test_reload import add_version

    folder = tmp_path / "artifacts"
    folder.mkdir()
    add_version(artifacts_dir, folder, "v1", "2026-01-01T00:00:00")
    artifact.publish(folder, "v1")
    env = server_env(folder, redis_url, prefix, api_keys='{"adm": "admin"}')
    with uvicorn_process(env) as first, uvicorn_process(env) as second:
        one, two = first.url, second.url
        top = httpx.get(f"{two}/v1/users/two-proc/recommendations").json()["items"][0]["item_id"]
        sent = {"user_id": "two-proc", "item_id": top, "event": "purchase"}
        assert httpx.post(f"{one}/v1/feedback", json=sent, headers={"x-api-key": "adm"}).status_code == 202
        after = httpx.get(f"{two}/v1/users/two-proc/recommendations").json()
        assert after["strategy"] == "personalized" and top not in [i["item_id"] for i in after["items"]]

        add_version(artifacts_dir, folder, "v2", "2026-02-01T00:00:00")
        artifact.publish(folder, "v2")
        reloaded = httpx.post(f"{one}/v1/admin/reload", headers={"x-api-key": "adm"}, timeout=30).json()
        assert reloaded["serving"] == "v2"
        for _ in range(200):  # the other process hears it over Redis pub/sub
            if httpx.get(f"{two}/v1/model").json()["model_version"] == "v2":
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the second process did not reload")
