"""The pages served beside the API, over HTTP: /docs and /redoc load only the app's own files
(vendored with their licences), /demo exists only with SHOPREC_DEMO, and the demo's shoppers
are users of the serving model. What a browser makes of them: tests/test_browser.py."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from app.scoring import artifact
from app.web.docs import VENDOR
from tests.conftest import app_client
from tools.server import server_env, uvicorn_process

ROOT = Path(__file__).resolve().parents[1]
ATTRIBUTES = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


async def test_docs_pages_load_only_files_the_app_serves(client):
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        urls = ATTRIBUTES.findall(html)
        assert urls and all(url.startswith("/docs/assets/") for url in urls), (page, urls)
        assert "cdn" not in html and "fonts.googleapis" not in html
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 100, url
    js = (await client.get("/docs/assets/swagger-ui/swagger-ui-bundle.js")).headers["content-type"]
    assert "javascript" in js


def test_vendored_files_keep_their_licences_and_ask_no_cdn():
    versions = json.loads((VENDOR / "versions.json").read_text())
    assert set(versions) == {"swagger-ui-dist", "redoc"}
    for package in ("swagger-ui", "redoc"):
        assert (VENDOR / package / "LICENSE").stat().st_size > 500
    assert "Apache License" in (VENDOR / "swagger-ui" / "LICENSE").read_text()
    # ReDoc's one hard-coded CDN image is replaced when vendoring (scripts/vendor_docs_assets.sh).
    assert "cdn.redoc.ly" not in (VENDOR / "redoc" / "redoc.standalone.js").read_text()


async def test_demo_is_off_by_default(client):
    assert (await client.get("/demo")).status_code == 404
    assert (await client.get("/v1/demo/shop")).status_code == 404
    spec = (await client.get("/openapi.json")).json()
    assert not [path for path in spec["paths"] if path.startswith("/v1/demo")]


async def test_demo_page_and_its_files(settings_factory, redis_client):
    async with app_client(settings_factory(demo=True)) as http:
        page = await http.get("/demo")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        urls = ATTRIBUTES.findall(page.text)
        assert {u for u in urls if u.startswith("/demo/assets/")} == {
            "/demo/assets/storefront.css",
            "/demo/assets/storefront.js",
        }
        assert all(u.startswith(("/demo/assets/", "data:")) for u in urls), urls
        for url in ("/demo/assets/storefront.css", "/demo/assets/storefront.js"):
            assert (await http.get(url)).status_code == 200


async def test_demo_shop_offers_users_of_the_serving_model(settings_factory, redis_client, artifacts_dir):
    users = set(artifact.load(artifacts_dir).users)
    async with app_client(settings_factory(demo=True)) as http:
        shop = (await http.get("/v1/demo/shop", params={"shoppers": 5})).json()
        assert len(shop["shoppers"]) == 5
        assert {s["user_id"] for s in shop["shoppers"]} <= users
        sizes = [s["interactions"] for s in shop["shoppers"]]
        assert sizes == sorted(sizes) and sizes[0] < sizes[-1]  # short to long histories
        for shopper in shop["shoppers"]:
            assert shopper["categories"] and set(shopper["categories"]) <= set(shop["categories"])
        model = (await http.get("/v1/model")).json()
        assert shop["model_version"] == model["model_version"]
        assert (await http.get("/v1/demo/shop", params={"shoppers": 0})).status_code == 422


async def test_demo_shop_needs_a_reader_key_where_reads_do(settings_factory, redis_client):
    settings = settings_factory(demo=True, api_keys={"r": "reader"}, read_requires_key=True)
    async with app_client(settings) as http:
        assert (await http.get("/v1/demo/shop")).status_code == 401
        assert (await http.get("/v1/demo/shop", headers={"x-api-key": "r"})).status_code == 200
        assert (await http.get("/demo")).status_code == 200  # the page itself is public


@pytest.mark.slow
def test_make_demo_serves_the_storefront(artifacts_dir, redis_url, prefix):
    """scripts/demo.py (`make demo`) turns SHOPREC_DEMO on and prints the page's address."""
    env = server_env(artifacts_dir, redis_url, prefix, log_requests=False)
    command = ["scripts.demo", "--artifacts", str(artifacts_dir), "--port", "{port}"]
    with uvicorn_process(env, command=command) as api:
        assert httpx.get(f"{api.url}/demo").status_code == 200
        assert httpx.get(f"{api.url}/v1/demo/shop").json()["shoppers"]
        assert f"demo storefront at {api.url}/demo" in api.log.read_text()


@pytest.mark.slow
def test_the_demo_stops_its_embedded_redis_on_sigterm(artifacts_dir, tmp_path):
    """Without SHOPREC_REDIS_URL `make demo` starts its own Redis; stopped as `docker stop` or
    systemd stop it (SIGTERM), it stops that Redis too instead of leaving it running."""
    command = [
        "scripts.demo",
        "--artifacts",
        str(artifacts_dir),
        "--port",
        "{port}",
        "--redis-dir",
        str(tmp_path),
    ]
    with uvicorn_process({"SHOPREC_REDIS_URL": ""}, command=command) as api:
        found = re.search(r"embedded Redis at unix://(\S+)", api.log.read_text())
        assert found, api.log.read_text()
        sock = found.group(1)
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(sock)  # the embedded Redis answers while the demo runs
        api.process.send_signal(signal.SIGTERM)
        assert api.process.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while Path(sock).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with pytest.raises(OSError), socket.socket(socket.AF_UNIX) as probe:
        probe.connect(sock)
