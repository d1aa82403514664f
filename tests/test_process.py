"""The real process: uvicorn over real HTTP, and no TensorFlow in the serving process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.scoring import artifact
from tools.server import children, free_port, server_env, uvicorn_process, wait_ready

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


def test_a_settled_heap_gives_freed_memory_back_to_the_system():
    """A model load's freed temporaries leave the worker's private memory (malloc_trim), in a
    fresh process: 64 MB in 2 MB arrays freed between small live ones, which keep the heap
    from shrinking at the free (a 4 MB array freed first raises glibc's mmap threshold, so
    they come from the heap, as a load's arrays do once large ones have been freed)."""
    code = (
        "import numpy as np; from app.observability import settle_heap;"
        "dirty = lambda: sum(int(l.split()[1]) for l in open('/proc/self/smaps_rollup')"
        " if l.startswith('Private_Dirty'));"
        "big = np.ones(524_288); del big;"
        "arrays, pins = [], [];"
        "[(arrays.append(np.ones(262_144)), pins.append(np.ones(1000))) for _ in range(32)];"
        "before = dirty();"
        "del arrays; kept = dirty(); settle_heap(); after = dirty();"
        "print((before - kept) // 1024, (before - after) // 1024)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    freed, trimmed = map(int, done.stdout.split())
    assert trimmed >= 48 > freed, done.stdout  # MB back to the system: after the trim, not at the free


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


def forked_anonymous_shared_kb(pid: int) -> int:
    """Dirty anonymous memory (heap, arenas) this process shares with another: pages it got
    from its parent by fork and has not written since. A spawned interpreter has none."""
    shared, anonymous = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and ":" not in fields[0]:  # a mapping's header: address range, ..., path
            anonymous = len(fields) < 6 or fields[5] in ("[heap]", "[anon]")
        elif anonymous and fields[0] == "Shared_Dirty:":
            shared += int(fields[1])
    return shared


def listening(pid: int) -> bool:
    """Whether ``pid`` is a worker that has loaded the model (mapped the artifact's arrays);
    a zygote, on its way out, never has."""
    try:
        return ".npy" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def workers_of(pid: int) -> set[int]:
    return set(children(pid))


@pytest.mark.slow
def test_app_serve_forks_workers_that_share_the_imported_app(artifacts_dir, redis_url, prefix, trained):
    result, _ = trained
    env = server_env(artifacts_dir, redis_url, prefix)
    command = ("app.serve", "--port", "{port}", "--workers", "2", "--log-level", "warning")
    with uvicorn_process(env, command=command) as api:
        supervisor = api.process.pid
        workers = workers_of(supervisor)
        assert len(workers) == 2
        body = {"items": result.data.item_ids[:3], "k": 10}
        for _ in range(20):  # both workers accept on the one socket; every request is answered
            assert httpx.post(f"{api.url}/v1/recommendations", json=body).status_code == 200
        # The workers were forked after the app's modules were imported: their heaps are still
        # shared with each other (a uvicorn --workers child, a new interpreter, shares none).
        for pid in workers:
            assert forked_anonymous_shared_kb(pid) > 10_000, pid
        # The app was imported by a zygote that has exited, not by the supervisor: a supervisor
        # holding the app would own every page both workers have since copied (its PSS).
        assert "numpy" not in Path(f"/proc/{supervisor}/maps").read_text()

        died = min(workers)
        os.kill(died, signal.SIGKILL)  # the supervisor replaces a worker that dies
        for _ in range(200):  # (the replacement comes through a zygote that exits)
            now = workers_of(supervisor)
            if len(now) == 2 and died not in now and all(listening(pid) for pid in now):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"no worker replaced {died}: {workers_of(supervisor)}")
        wait_ready(api.url)
        assert httpx.post(f"{api.url}/v1/recommendations", json=body).status_code == 200

        api.process.terminate()  # SIGTERM: every worker shuts down gracefully, then the supervisor
        assert api.process.wait(timeout=20) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in now)


def test_app_serve_stops_when_its_workers_cannot_start(tmp_path):
    env = {**os.environ, "SHOPREC_REDIS_URL": "not-a-url", "SHOPREC_ARTIFACTS_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "app.serve", "--workers", "2", "--port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # not a restart loop
    assert "SHOPREC_REDIS_URL must start with redis://" in done.stderr
    assert "could not start; stopping" in done.stderr
