"""Browser fixtures: Debian's headless Chromium driven by Playwright against a live server, and
staff logging in as they would.

Every test here is skipped (with the reason) where /usr/bin/chromium is missing; CI installs it.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.cache import cache

from backoffice.roles import roles_sync
from tests.admin_shop import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The smallest laptop screen staff use: what shows without scrolling is "above the fold".
LAPTOP = {"width": 1366, "height": 768}


def pytest_collection_modifyitems(config, items) -> None:
    """Mark this folder's tests `browser`, and skip them where Chromium is missing."""
    missing = pytest.mark.skip(
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
    )
    for item in items:
        if Path(item.fspath).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)
            if not CHROMIUM.exists():
                item.add_marker(missing)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between browser steps are still plain synchronous calls.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def shop(settings, tmp_path) -> None:
    """Roles (the flush of the previous live-server test removed them), cheap hashing and a
    private media folder for the invoices the tests' payments render."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path
    roles_sync()
    cache.clear()


@pytest.fixture
def laptop_page(browser) -> Iterator:
    """A page the size of a 1366 by 768 laptop screen."""
    context = browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def log_in(page, live_server, user) -> None:
    """Log `user` in to the admin through its log-in form."""
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
