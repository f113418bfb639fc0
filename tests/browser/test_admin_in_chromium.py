"""An operator in a real Chromium: zh-hans admin, 新增 an API key, use it from outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.browser

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (CI installs it)", allow_module_level=True)


@pytest.fixture
def operator(transactional_db):
    return get_user_model().objects.create_superuser("operator", password="s3cret-pass")


@pytest.fixture
def browser_page(live_server_url, operator, bot, http):
    """Set up after the database rows it needs: Playwright's sync API runs an event loop in
    this thread, and Django refuses ORM calls while one runs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(locale="zh-CN", base_url=live_server_url)
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


def test_operator_creates_a_key_with_xinzeng_and_calls_external_chat(browser_page, http, bot):
    page = browser_page

    page.goto("/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "s3cret-pass")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")

    page.goto("/admin/apikeys/apikey/")
    page.get_by_role("link", name="新增 API 密钥").click()
    page.fill("#id_name", "浏览器创建")
    page.click("input[name=_save]")

    key = page.input_value("#new-api-key")
    assert key.startswith("af-")
    assert "只显示这一次" in page.content()

    answer = http.post(
        "/api/v1/aiBot/externalChat",
        headers={"Authorization": key},
        json={"botId": bot.id, "messages": [{"role": "user", "content": "你好"}]},
    )
    assert answer.status_code == 200
    assert answer.json()["choices"]["message"]["content"] == "Echo: 你好"

    page.goto("/admin/apikeys/apikey/")
    assert key not in page.content()
    assert key[:9] in page.content()


def _log_in(page) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "s3cret-pass")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def test_the_key_scope_selector_speaks_chinese(browser_page):
    """The admin's JavaScript widgets translate with the catalog the page loads (`jsi18n`):
    in zh-hans it has the selector's strings, including those Django 5.2's own catalog lacks
    (the project's djangojs catalog fills them). The test server serves no static files, so
    the selector's own script (which calls exactly these) does not run here."""
    page = browser_page
    _log_in(page)
    page.goto("/admin/apikeys/apikey/add/")
    page.wait_for_function("typeof window.interpolate === 'function'")
    texts = page.evaluate(
        """() => [
            interpolate(gettext('Choose all %s'), ['允许的机器人']),
            interpolate(
                gettext('Choose %s by selecting them and then select the "Choose" arrow button.'),
                ['允许的机器人'],
            ),
            interpolate(gettext('Remove all %s'), ['允许的机器人']),
            interpolate(gettext('Available %s'), ['允许的机器人']),
            gettext('Filter'),
        ]"""
    )
    assert texts[0] == "全选允许的机器人"
    assert texts[1].startswith("选中要选择的允许的机器人")
    assert texts[2] == "移除全部允许的机器人"
    assert texts[3] == "可用 允许的机器人"
    assert texts[4] == "过滤"


def test_xinzeng_in_the_bots_key_section_shows_the_new_key_once(browser_page, http, bot):
    page = browser_page
    _log_in(page)
    page.goto(f"/admin/bots/bot/{bot.pk}/change/")
    page.fill("#id_new_api_key_name", "店铺")
    page.get_by_role("button", name="新增 API 密钥").click()
    key = page.input_value("#new-api-key")
    assert key.startswith("af-")
    answer = http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "any", "messages": [{"role": "user", "content": "你好"}]},
    )
    assert answer.json()["choices"][0]["message"]["content"] == "Echo: 你好"
    page.get_by_role("link", name="完成").click()
    page.wait_for_url(f"**/admin/bots/bot/{bot.pk}/change/")
    section = page.locator("#bot-api-keys").inner_text()
    assert "店铺" in section and key[:9] in section and key not in page.content()
