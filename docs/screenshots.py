"""Take the README's screenshots of share links and the playground (`make screenshots`).

Serves the project on a throwaway SQLite database with the loopback fake LLM (no network, no
model), creates a bot, a share link and an operator, then drives Chromium through Playwright:
the share link's page at desktop and phone width, the admin's share-link list, and a bot's
playground. Writes docs/images/*.png.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

QUESTION = (
    "How do I read a file in Python?\n\n"
    "Use **`pathlib`**:\n\n```python\nfrom pathlib import Path\n\n"
    "text = Path('notes.txt').read_text(encoding='utf-8')\n```\n\n"
    "- `read_text` opens and closes the file\n- pass the *encoding*"
)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    database = Path(tempfile.mkdtemp()) / "screenshots.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": "screenshots-only",
        # runserver (Daphne's) serves the admin's static files when DEBUG is on.
        "DEBUG": "true",
        "REDIS_URL": "",
    }
    os.environ.update(env)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env
    ).check_returncode()

    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from aiflowy.testing.fake_upstream import FakeUpstream
    from aiflowy.testing.servers import free_port, start_process, stop_process, wait_for_port
    from bots.models import Bot, LlmProvider
    from shares.models import ShareLink

    upstream = FakeUpstream().start_in_thread()
    provider = LlmProvider.objects.create(
        name="demo", base_url=upstream.base_url, api_key="sk-demo", default_model="demo-model"
    )
    bot = Bot.objects.create(
        name="Python helper",
        provider=provider,
        system_prompt="You answer questions about Python.",
        welcome_message="Hi! Ask me anything about Python.",
    )
    link = ShareLink.objects.create(bot=bot, name="Python course", show_detail=True)
    get_user_model().objects.create_superuser("admin", password="admin")

    port = free_port()
    process = start_process(
        ["manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], env=env, log_path=None
    )
    wait_for_port(process, port, what="runserver")
    url = f"http://127.0.0.1:{port}"
    try:
        _shoot(url, link.share_id, bot.pk)
    finally:
        stop_process(process)
        upstream.stop()


def _ask(page, question: str) -> None:
    page.fill("#question", question)
    page.click("#send")
    page.wait_for_selector(".message.assistant:not(.welcome) .content.markdown")


def _shoot(url: str, share_id: str, bot_id: int) -> None:
    from playwright.sync_api import sync_playwright

    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])

        desktop = browser.new_context(
            base_url=url, locale="en-US", viewport={"width": 1200, "height": 760}
        ).new_page()
        desktop.goto(f"/chat/share?shareId={share_id}&authToken=student-42")
        desktop.wait_for_selector("#bot-name:has-text('Python helper')")
        _ask(desktop, "What is a list comprehension?")
        desktop.click("#new-chat")
        _ask(desktop, QUESTION)
        desktop.screenshot(path=IMAGES / "share-page.png")

        phone = browser.new_context(
            base_url=url, locale="en-US", viewport={"width": 390, "height": 780},
            device_scale_factor=2,
        ).new_page()  # fmt: skip
        phone.goto(f"/chat/share?shareId={share_id}")
        phone.wait_for_selector("#bot-name:has-text('Python helper')")
        _ask(phone, "Give me a *one-line* example of a `dict` comprehension.")
        phone.screenshot(path=IMAGES / "share-page-phone.png")

        admin = browser.new_context(
            base_url=url, locale="en-US", viewport={"width": 1280, "height": 640}
        ).new_page()
        admin.goto("/admin/login/")
        admin.fill("#id_username", "admin")
        admin.fill("#id_password", "admin")
        admin.click("input[type=submit]")
        admin.wait_for_url("**/admin/")
        admin.goto("/admin/shares/sharelink/")
        admin.screenshot(path=IMAGES / "share-link-admin.png")

        admin.goto(f"/chat/playground/{bot_id}")
        admin.set_viewport_size({"width": 1200, "height": 800})
        admin.wait_for_selector("#bot-name:has-text('Python helper')")
        _ask(admin, "Explain `enumerate` in one sentence.")
        admin.click(".message.assistant:not(.welcome) details.detail summary")
        admin.screenshot(path=IMAGES / "playground.png")
        browser.close()


if __name__ == "__main__":
    main()
