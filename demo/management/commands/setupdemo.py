"""`manage.py setupdemo`: make sure the demo admin, provider, bot, workflow and key exist.

Safe to run on every start (`make run` does). The provider is the offline `echo` kind, unless
`OPENAI_BASE_URL`, `OPENAI_API_KEY` and `OPENAI_MODEL` are all set: then it points there.
The demo key is printed once, when it is created; it cannot be shown again (only its hash is
stored), so a later run says how to make a new one. The demo key is bound to the demo bot (its
only allowed bot, and its default), so the reference documents' request examples work with it
as written: any `model`, no `model`, or the documents' own `botId`.
"""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from apikeys.models import ApiKey
from apikeys.services import api_key_create
from bots.models import Bot, LlmProvider
from demo.workflows import (
    DEMO_WORKFLOW_DESCRIPTION,
    DEMO_WORKFLOW_TITLE,
    demo_workflow_definition,
)
from workflows.definitions import workflow_create
from workflows.models import Workflow

DEMO_KEY_NAME = "demo"


class Command(BaseCommand):
    help = "Create (or update) the demo admin user, provider, bot, workflow and API key."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="http://127.0.0.1:8080")

    def handle(self, *args, **options) -> None:
        host = options["host"]
        username, password = self._admin()
        provider = self._provider()
        bot, _ = Bot.objects.update_or_create(
            name="demo",
            defaults={
                "provider": provider,
                "description": "Demo bot",
                "system_prompt": "You are a helpful assistant. The user is {{name}}.",
                "welcome_message": "Hello! Ask me anything.",
            },
        )
        workflow = self._workflow(bot)
        self.stdout.write(
            f"Admin:        {host}/admin/  (login {username!r}, password {password!r})"
        )
        self.stdout.write(f"Provider:     {provider.name} ({provider.get_kind_display()})")
        self.stdout.write(f"Demo bot id:  {bot.pk}")
        if workflow is not None:
            self.stdout.write(f"Demo workflow id: {workflow.pk}")
        self._key(host, bot)

    def _admin(self) -> tuple[str, str]:
        username = os.environ.get("DEMO_ADMIN_USER", "admin")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
        user_model = get_user_model()
        if not user_model.objects.filter(username=username).exists():
            user_model.objects.create_superuser(username=username, email="", password=password)
        else:
            password = "(unchanged)"
        return username, password

    def _provider(self) -> LlmProvider:
        base_url = os.environ.get("OPENAI_BASE_URL", "")
        api_key = os.environ.get("OPENAI_API_KEY", "")
        model = os.environ.get("OPENAI_MODEL", "")
        if base_url and api_key and model:
            defaults = {
                "kind": LlmProvider.Kind.OPENAI,
                "base_url": base_url,
                "api_key": api_key,
                "default_model": model,
            }
        else:
            defaults = {
                "kind": LlmProvider.Kind.ECHO,
                "base_url": "",
                "api_key": "",
                "default_model": "echo",
            }
        provider, _ = LlmProvider.objects.update_or_create(name="demo", defaults=defaults)
        return provider

    def _workflow(self, bot: Bot) -> Workflow:
        workflow = Workflow.objects.filter(title=DEMO_WORKFLOW_TITLE).first()
        if workflow is not None:
            return workflow
        return workflow_create(
            title=DEMO_WORKFLOW_TITLE,
            description=DEMO_WORKFLOW_DESCRIPTION,
            definition=demo_workflow_definition(bot.pk),
        )

    def _key(self, host: str, bot: Bot) -> None:
        existing = ApiKey.objects.filter(name=DEMO_KEY_NAME).first()
        if existing is not None:
            if not existing.allowed_bots.exists():
                # A demo key made before keys were bound to the demo bot.
                existing.allowed_bots.set([bot.pk])
                ApiKey.objects.filter(pk=existing.pk).update(default_bot=bot)
            self.stdout.write(
                f"Demo API key: exists ({existing.prefix}…); it was shown when it was created. "
                "New one: .venv/bin/python manage.py createapikey --name demo2"
            )
            return
        _api_key, raw_key = api_key_create(name=DEMO_KEY_NAME, bot_ids=[bot.pk])
        self.stdout.write(f"Demo API key (shown once, copy it now): {raw_key}")
        self.stdout.write("Try it:")
        self.stdout.write(
            f"  curl -s {host}/api/v1/aiBot/externalChat -H 'Authorization: Bearer {raw_key}' "
            f"-H 'Content-Type: application/json' "
            f'-d \'{{"botId": {bot.pk}, "messages": [{{"role": "user", "content": "你好"}}]}}\''
        )
        self.stdout.write(
            f"  curl -s {host}/v1/chat/completions -H 'Authorization: Bearer {raw_key}' "
            f"-H 'Content-Type: application/json' "
            f'-d \'{{"messages": [{{"role": "user", "content": "Hello, how are you?"}}]}}\''
        )
