"""The preference center in a real browser: Debian's chromium, headless, driven by Selenium through Debian's
chromium-driver (both given by path; Selenium Manager is kept offline, so nothing is downloaded).

A customer opens the preference link from the refill reminder the pharmacy journey sent (the outbox), unticks
promotional email with the keyboard, saves; the next promotional email is suppressed with the reason, and the
pharmacy's transactional message (refill ready) still goes.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.delivery import DeliveryActivities
from activities.links import customer_links
from activities.rendering import TemplateRenderer
from contracts.activities import SendMessageInput
from journeymap.preferences import load_preferences
from runtime.settings import Settings
from starter.api import ApiServices, create_app
from testkit.harness import ROOT, running_journeys
from testkit.processes import free_port
from tests.browser import CHROMIUM_FLAGS, chromium

LINK_KEY = "browser-test-link-key-0123456789"


def chromedriver() -> str:
    found = shutil.which("chromedriver")
    if found is None:
        pytest.fail("chromium-driver is not installed; the preference center is checked in chromium through it")
    return found


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager: never fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver()), options=options)
    try:
        yield driver
    finally:
        driver.quit()


async def test_a_customer_unticks_promotional_email_in_chromium_and_the_next_offer_is_suppressed(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    database_url: str,
    browser: webdriver.Chrome,
) -> None:
    port = free_port()
    overrides = {"link_keys": LINK_KEY, "links_url": f"http://127.0.0.1:{port}"}
    async with running_journeys(
        dev_env.client, tmp_path, task_queue, database_url=database_url, settings_overrides=overrides
    ) as j:
        j.add_customer("pat", first_name="Pat", timezone="UTC")
        # Filled 28 days ago with 30 days' supply: the reminder (push and email) is due now.
        filled = (datetime.now(UTC) - timedelta(days=28)).isoformat()
        await j.send("pat", "prescription_filled", rx_id="rx-1", days_supply=30, refills_remaining=1, filled_at=filled)
        await j.settled("pharmacy_refill", "pat", "rx-1", until=lambda s: s.step == "await_order")
        [reminder] = [r for r in j.outbox("pat") if r.channel == "email"]
        found = re.search(r"http://127\.0\.0\.1:\d+/preferences/\S+", reminder.content["text"])
        assert found, reminder.content["text"]
        link = found.group(0)

        settings = Settings(api_keys="k", data_dir=tmp_path, journeys_dir=ROOT / "journeys", **overrides)  # type: ignore[arg-type]
        app = create_app(settings, ApiServices(j.journeys, j.engine))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                await asyncio.sleep(0.02)
            saved = await asyncio.to_thread(untick_promotional_email, browser, link)
        finally:
            server.should_exit = True
            await serving
        assert saved == (True, False), "ticked before, unticked after saving"

        # The next promotional email to Pat, through the same send path the worker uses.
        sender = DeliveryActivities(
            j.engine,
            TemplateRenderer(settings.templates_dir),
            links=customer_links(settings),
            preferences=load_preferences(settings.preferences_file),
        )
        offer = await ActivityEnvironment().run(
            sender.send_message,
            SendMessageInput(
                idempotency_key="journey/lifecycle/pat/x/winback/0",
                journey="lifecycle",
                step="winback",
                customer_id="pat",
                channels=["email"],
                template="lifecycle_winback",
                category="promotional",
            ),
        )
        assert [(o.status, o.reason) for o in offer.outcomes] == [
            ("suppressed", "unconsented: email/offers revoked (preference_center)")
        ]

        # The pharmacy's transactional message still goes.
        await j.send("pat", "refill_ordered", rx_id="rx-1")
        await j.send("pat", "refill_ready", rx_id="rx-1", store_name="Main St")
        await j.settled("pharmacy_refill", "pat", "rx-1", until=lambda s: s.step == "await_pickup")
        assert [(r.template, r.channel) for r in j.outbox("pat")][-1] == ("refill_ready", "push")


def untick_promotional_email(browser: webdriver.Chrome, link: str) -> tuple[bool, bool]:
    """In the browser: open the link, untick promotional email with the keyboard, save; the box before and
    after."""
    browser.get(link)
    assert browser.title.startswith("Your preferences")
    box = browser.find_element(By.ID, "box-email-promotional")
    label = browser.find_element(By.CSS_SELECTOR, "label[for='box-email-promotional']")
    assert label.text == "Email", "every box has its label"
    legend = box.find_element(By.XPATH, "ancestor::fieldset/legend")
    assert legend.text == "Promotions"
    before = box.is_selected()
    box.send_keys(Keys.SPACE)  # the keyboard, as a customer without a mouse would
    browser.find_element(By.ID, "save").send_keys(Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "saved"))
    return before, browser.find_element(By.ID, "box-email-promotional").is_selected()
