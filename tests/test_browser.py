"""The pages a person sees, in a real browser: Debian's Chromium (installed by `make test`
through scripts/setup_test_tools.sh) driven by Playwright, against real uvicorn processes and
the real Redis. Every request to a host other than this machine is blocked and recorded, so
"works offline" is what is tested. The screenshots in docs/screenshots/ are taken here.

The storefront sends recommendation requests without an exclusion flag: whichever default
policy the API has (exclude everything seen, or purchases), a bought item leaves the list.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tools.server import free_port, server_env, uvicorn_process

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root on CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Below the page's own request blocking: no name but this machine's resolves at all.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
VIEWPORT = {"width": 1280, "height": 900}
WRITER_KEY, ADMIN_KEY = "browser-writer-key", "browser-admin-key"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        message = "Chromium is missing: `make test` installs it (scripts/setup_test_tools.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def serving(artifacts_dir: Path, redis_url: str, **settings: object) -> Iterator[str]:
    """A uvicorn process on its own Redis key prefix (removed afterwards); yields its URL."""
    prefix = f"shoprec-browser:{uuid.uuid4().hex[:10]}"
    env = server_env(artifacts_dir, redis_url, prefix, log_requests=False, **settings)
    try:
        with uvicorn_process(env) as api:
            yield api.url
    finally:
        with contextlib.suppress(redis.RedisError):
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


@pytest.fixture(scope="module")
def demo(artifacts_dir, redis_url) -> Iterator[str]:
    with serving(artifacts_dir, redis_url, demo=True) as base:
        yield base


@contextlib.contextmanager
def offline_page(browser, base: str):
    """A page that may only reach ``base``: any other request is aborted and recorded, and
    the test fails if there was one, or if the page threw an uncaught JavaScript error."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    outside: list[str] = []

    def only_this_server(route) -> None:
        url = route.request.url
        if url.startswith((base + "/", "data:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not outside, f"the page asked for outside resources: {outside}"
    assert not errors, f"JavaScript errors: {errors}"


def screenshot(page, name: str, **options: object) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), **options)


def operation_count(base: str) -> int:
    spec = httpx.get(f"{base}/openapi.json").json()
    return sum(len(operations) for operations in spec["paths"].values())


# -- API documentation -------------------------------------------------------------------------
def test_swagger_ui_renders_every_operation_offline(chromium, demo):
    with offline_page(chromium, demo) as page:
        page.goto(f"{demo}/docs")
        page.wait_for_selector(".opblock")
        assert page.locator(".opblock").count() == operation_count(demo)
        assert page.locator(".opblock-summary-path", has_text="/v1/recommendations").count() >= 1
        assert page.locator(".btn.authorize").is_visible()
        screenshot(page, "docs.png")


def test_redoc_renders_every_operation_offline(chromium, demo):
    with offline_page(chromium, demo) as page:
        page.goto(f"{demo}/redoc")
        operations = page.locator("[data-section-id*='/operation/']")
        operations.first.wait_for()
        assert operations.count() == operation_count(demo)


def _execute(page, operation_id: str) -> str:
    """Try an operation out in the Swagger UI; the status code it shows."""
    operation = page.locator(f"[id$='-{operation_id}']")
    if not operation.locator(".opblock-body").count():
        operation.locator(".opblock-summary").click()
    if not operation.locator(".execute").count():
        operation.locator(".try-out__btn").click()
    if operation.locator(".btn-clear").count():  # the previous answer
        operation.locator(".btn-clear").click()
    operation.locator(".execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    return status.inner_text().strip()


def _authorize(page, key: str) -> None:
    page.locator(".btn.authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator(".auth-btn-wrapper").wait_for()
    logout = dialog.locator(".auth-btn-wrapper button", has_text="Logout")
    if logout.count():  # authorized before: log out to enter another key
        logout.click()
    dialog.locator("input").fill(key)
    dialog.locator(".auth-btn-wrapper button.authorize").click()
    dialog.locator(".auth-btn-wrapper .btn-done").click()


def test_authorize_button_lets_the_page_call_writer_and_admin_routes(chromium, artifacts_dir, redis_url):
    keys = json.dumps({WRITER_KEY: "writer", ADMIN_KEY: "admin"})
    with serving(artifacts_dir, redis_url, api_keys=keys) as base, offline_page(chromium, base) as page:
        page.goto(f"{base}/docs")
        page.wait_for_selector(".opblock")
        assert _execute(page, "post_feedback_v1_feedback_post") == "401"
        _authorize(page, WRITER_KEY)
        assert _execute(page, "post_feedback_v1_feedback_post") == "202"
        assert _execute(page, "reload_model_v1_admin_reload_post") == "403"
        _authorize(page, ADMIN_KEY)
        assert _execute(page, "reload_model_v1_admin_reload_post") == "200"


# -- the demo storefront -----------------------------------------------------------------------
def refreshed(page, action: Callable[[], object] | None = None) -> None:
    """Run ``action`` and wait until the recommendations on screen were asked for again."""
    before = int(page.locator("#grid").get_attribute("data-refresh") or 0)
    if action is not None:
        action()
    page.wait_for_function(
        "n => Number(document.querySelector('#grid').dataset.refresh || 0) > n", arg=before
    )


def shown(page) -> list[str]:
    return page.locator("#grid > li").evaluate_all("cards => cards.map(c => c.dataset.itemId)")


def known_shopper(page, n: int = 0) -> str:
    return page.locator("#shopper optgroup option").nth(n).get_attribute("value")


def open_storefront(page, base: str) -> None:
    page.goto(f"{base}/demo")
    page.wait_for_function("Number(document.querySelector('#grid').dataset.refresh || 0) > 0")


def test_a_purchase_changes_the_recommendations_and_the_item_leaves_them(chromium, demo):
    with offline_page(chromium, demo) as page:
        open_storefront(page, demo)
        shopper = known_shopper(page, 1)
        refreshed(page, lambda: page.select_option("#shopper", shopper))
        assert page.inner_text("#strategy") == "personalized"
        assert page.locator("#grid .because").count() > 0  # "because ..." from explain
        before = shown(page)
        screenshot(page, "demo-before.png")

        bought = before[0]
        card = page.locator(f'#grid > li[data-item-id="{bought}"]')
        title = card.locator("h3").inner_text()
        refreshed(page, lambda: card.locator("button[data-event=purchase]").click())
        after = shown(page)
        assert bought not in after and after != before
        changes = page.inner_text("#changes")
        assert changes.startswith(f"After you bought “{title}”") and "left the list" in changes
        assert page.locator("#grid .move").count() > 0  # new entries or moves are marked
        assert f"bought “{title}”" in page.inner_text("#activity")
        screenshot(page, "demo-after.png")


def test_item_page_with_collaborative_and_content_similar_items(chromium, demo):
    # A brand-new item: no interactions, so only its attributes relate it to others.
    new_item = f"browser-new-{uuid.uuid4().hex[:6]}"
    body = {"title": "Brand new rose mug", "category": "mugs", "brand": "Elm", "price": 7.5}
    assert httpx.put(f"{demo}/v1/items/{new_item}", json=body).status_code == 200
    try:
        with offline_page(chromium, demo) as page:
            open_storefront(page, demo)
            assert page.inner_text("#strategy") == "popular"  # a new visitor has no history
            first = page.locator("#grid > li h3 a").first
            refreshed(page, first.click)  # opening an item page is a view
            assert not page.locator("#item-page").is_hidden()
            assert page.inner_text("#strategy") == "personalized"
            page.wait_for_selector("#similar[data-by=collaborative] > li")
            collaborative = page.locator("#similar > li").evaluate_all("c => c.map(e => e.dataset.itemId)")
            page.click("#similar-by button[data-by=content]")
            page.wait_for_selector("#similar[data-by=content] > li")
            content = page.locator("#similar > li").evaluate_all("c => c.map(e => e.dataset.itemId)")
            assert content and content != collaborative

            page.fill("#item-id", new_item)
            refreshed(page, lambda: page.click("#open-item button"))
            assert page.inner_text("#item-title") == "Brand new rose mug"
            page.wait_for_selector("#similar[data-by=content] > li")
            assert page.locator("#similar > li").count() == 8
            screenshot(page, "demo-item.png", full_page=True)
    finally:
        httpx.delete(f"{demo}/v1/items/{new_item}")


def test_filters_and_k(chromium, demo):
    with offline_page(chromium, demo) as page:
        open_storefront(page, demo)
        refreshed(page, lambda: page.select_option("#shopper", known_shopper(page, 2)))
        category = page.locator("#category option").nth(1).get_attribute("value")
        page.select_option("#category", category)
        page.fill("#k", "4")
        page.fill("#max-price", "1000")
        refreshed(page, lambda: page.click("#apply"))
        metas = page.locator("#grid .meta").all_inner_texts()
        assert len(metas) == 4 and all(meta.startswith(category) for meta in metas)
        page.fill("#min-price", "5000")  # above the maximum: the API's 422, shown as a message
        page.click("#apply")
        message = page.locator("#messages .message.error")
        message.wait_for()
        assert "min_price must not exceed max_price" in message.inner_text()
        assert len(shown(page)) == 4  # the last good list stays


def test_diversity_and_slots_for_new_items(chromium, demo):
    """The diversity slider re-ranks the list; the exploration slider gives slots to items with
    little exposure, marked on their cards."""
    with offline_page(chromium, demo) as page:
        open_storefront(page, demo)
        refreshed(page, lambda: page.select_option("#shopper", known_shopper(page, 3)))
        page.fill("#k", "8")
        refreshed(page, lambda: page.click("#apply"))
        plain = shown(page)
        assert page.locator("#grid .card.explored").count() == 0
        page.locator("#diversity").fill("0.9")
        assert page.locator("#diversity-value").inner_text() == "0.9"
        refreshed(page, lambda: page.click("#apply"))
        assert shown(page) != plain and shown(page)[0] == plain[0]  # MMR keeps the best item first
        page.locator("#diversity").fill("0")
        page.locator("#exploration").fill("0.2")
        assert page.locator("#exploration-value").inner_text() == "20%"
        refreshed(page, lambda: page.click("#apply"))
        explored = page.locator("#grid .card.explored")
        assert explored.count() >= 1 and "new to the shop" in explored.first.inner_text()


def test_errors_are_messages_not_a_broken_page(chromium, artifacts_dir, tmp_path):
    from tools.server import start_redis

    port = free_port()
    own_redis = start_redis(tmp_path, port, "--save", "", "--appendonly", "no")
    try:
        with (
            serving(artifacts_dir, f"redis://127.0.0.1:{port}/0", demo=True) as base,
            offline_page(chromium, base) as page,
        ):
            open_storefront(page, base)
            page.fill("#item-id", "no-such-item")
            page.click("#open-item button")
            message = page.locator("#messages .message.error")
            message.wait_for()
            assert "unknown item 'no-such-item'" in message.inner_text()

            refreshed(page, lambda: page.select_option("#shopper", known_shopper(page)))
            before = shown(page)
            own_redis.kill()
            own_redis.wait()
            page.locator("#grid > li button[data-event=purchase]").first.click()
            message.wait_for()
            assert "redis is not answering" in message.inner_text() and "503" in message.inner_text()
            assert shown(page) == before  # nothing was recorded, nothing changed
            screenshot(page, "demo-redis-down.png")
            refreshed(page, lambda: page.click("#apply"))  # recommendations still answer
            assert page.inner_text("#live") == "off"
            assert "Live feedback is off" in page.inner_text("#messages")
    finally:
        if own_redis.poll() is None:
            own_redis.kill()
        own_redis.wait()
