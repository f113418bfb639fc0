"""The share-link chat page and the playground in a real Chromium: streaming, stop, history
after a reload, answers that try to run script, and the operator's playground."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from shares.models import ShareLink

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.browser

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (CI installs it)", allow_module_level=True)

ANSWER = ".message.assistant:not(.welcome)"


@pytest.fixture
def launch(live_server_url):
    """`launch(**context_options)` → a page. Playwright starts at the first call: its sync API
    runs an event loop in this thread, and Django refuses ORM calls while one runs, so tests
    create their rows first."""
    from playwright.sync_api import sync_playwright

    started = {}
    contexts = []

    def make(**options):
        if not started:
            started["playwright"] = sync_playwright().start()
            started["browser"] = started["playwright"].chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
            )
        options.setdefault("locale", "en-US")
        context = started["browser"].new_context(base_url=live_server_url, **options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield make
    for context in contexts:
        context.close()
    if started:
        started["browser"].close()
        started["playwright"].stop()


def _wait_for_text(page, selector, predicate, timeout_ms=15_000) -> str:
    for _ in range(timeout_ms // 50):
        text = page.inner_text(selector)
        if predicate(text):
            return text
        page.wait_for_timeout(50)
    raise AssertionError(f"{selector} never matched; last text: {text!r}")


def test_a_visitor_chats_watches_the_answer_stream_stops_it_and_finds_chats_after_reload(
    launch, make_bot, transactional_db
):
    slow_bot = make_bot(name="Slow helper", model="slow-model", welcome_message="Hello!")
    link = ShareLink.objects.create(bot=slow_bot, name="public")
    page = launch(viewport={"width": 390, "height": 844})  # a phone

    page.goto(f"/chat/share?shareId={link.share_id}")
    page.wait_for_selector("#bot-name:has-text('Slow helper')")
    assert page.inner_text(".message.welcome") == "Hello!"
    page.fill("#question", "stream please")
    page.press("#question", "Enter")

    # Words arrive one by one while the answer is still running (the stop button is shown).
    # (Polled from here: the page's CSP forbids the eval that wait_for_function would use.)
    partial = _wait_for_text(page, f"{ANSWER} .content", lambda text: text.count("stream") >= 3)
    assert page.is_visible("#stop")
    _wait_for_text(page, f"{ANSWER} .content", lambda text: len(text) > len(partial))
    assert page.is_visible("#stop")
    page.click("#stop")
    page.wait_for_selector(f"{ANSWER} .stopped")
    assert page.is_visible("#send")

    page.reload()
    page.wait_for_selector(".chat-link:has-text('stream please')")
    page.wait_for_selector(f"{ANSWER} .content")  # the chat reopened from the URL
    assert page.inner_text(".message.user .content") == "stream please"
    assert page.inner_text(f"{ANSWER} .content").startswith("Echo: stream please")

    page.click("#new-chat-top")  # on a phone the chat list is a drawer
    assert page.locator(ANSWER).count() == 0
    page.click("#menu-toggle")
    page.click(".chat-link:has-text('stream please')")
    page.wait_for_selector(".message.user:has-text('stream please')")


def test_an_answer_with_script_renders_as_harmless_text_even_without_csp(
    launch, bot, transactional_db
):
    link = ShareLink.objects.create(bot=bot, name="public")
    # bypass_csp: the sanitiser alone must hold; the CSP is only the second wall.
    page = launch(bypass_csp=True)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(f"/chat/share?shareId={link.share_id}")
    page.wait_for_selector("#bot-name:has-text('helper')")
    hostile = (
        "<img src=x onerror=alert('img')> <script>alert('script')</script> "
        "[click me](javascript:alert('link')) <a href=\"javascript:alert('a')\">a</a>"
    )
    page.fill("#question", hostile)
    page.click("#send")
    page.wait_for_selector(f"{ANSWER} .content.markdown")

    answer = page.locator(f"{ANSWER} .content")
    assert answer.locator("img, script, iframe").count() == 0
    hrefs = answer.locator("a").evaluate_all("links => links.map(a => a.href)")
    assert not [href for href in hrefs if href.lower().startswith("javascript")]
    assert "<script>alert('script')</script>" in answer.inner_text()
    assert page.inner_text(".message.user .content") == hostile
    page.locator(f"{ANSWER} .content").click()
    page.wait_for_timeout(300)
    assert dialogs == []

    page.reload()  # the stored answer, shown again, is just as harmless
    page.wait_for_selector(f"{ANSWER} .content.markdown")
    assert page.locator(f"{ANSWER} img, {ANSWER} script").count() == 0
    assert dialogs == []


def test_the_playground_answers_with_detail_and_its_chat_appears_in_the_admin(
    launch, bot, transactional_db
):
    get_user_model().objects.create_superuser("operator", password="s3cret-pass")
    page = launch(locale="zh-CN")
    page.goto("/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "s3cret-pass")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")

    page.goto(f"/admin/bots/bot/{bot.id}/change/")
    page.click("text=打开调试对话")
    page.wait_for_selector("#bot-name:has-text('helper')")
    assert page.is_visible(".badge")
    page.fill("#question", "playground **question**")
    page.press("#question", "Enter")
    page.wait_for_selector(f"{ANSWER} .content.markdown strong")
    page.click(f"{ANSWER} details.detail summary")
    detail = page.inner_text(f"{ANSWER} details.detail")
    assert "You are helpful." in detail  # the prompt sent, system prompt first
    assert "fake-model" in detail

    page.goto("/admin/chat/conversation/")
    assert page.locator("text=playground **question**").count() >= 1
