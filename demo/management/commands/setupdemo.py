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

from aiflowy.errors import UpstreamError
from apikeys.models import ApiKey
from apikeys.services import api_key_create
from bots.models import Bot, LlmProvider
from demo.knowledge import DEMO_ITEMS, DEMO_KNOWLEDGE_BASE_NAME
from demo.workflows import (
    DEMO_WORKFLOW_DESCRIPTION,
    DEMO_WORKFLOW_TITLE,
    demo_workflow_definition,
)
from knowledge.models import BotKnowledgeBase, Collection, KnowledgeBase, SearchMode
from knowledge.selectors import knowledge_base_config_get
from knowledge.services import NewItem, data_items_insert_now
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
        knowledge_base = self._knowledge_base(bot, provider)
        self.stdout.write(
            f"Admin:        {host}/admin/  (login {username!r}, password {password!r})"
        )
        self.stdout.write(f"Provider:     {provider.name} ({provider.get_kind_display()})")
        self.stdout.write(f"Demo bot id:  {bot.pk}")
        if workflow is not None:
            self.stdout.write(f"Demo workflow id: {workflow.pk}")
        search = knowledge_base.embedding_model or "full-text search"
        self.stdout.write(f"Demo knowledge base id: {knowledge_base.pk} ({search})")
        self._key(host, bot, knowledge_base)

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

    def _knowledge_base(self, bot: Bot, provider: LlmProvider) -> KnowledgeBase:
        """The bilingual demo handbook, linked to the demo bot. Embeddings only with a real
        provider (`OPENAI_EMBEDDING_MODEL`, default text-embedding-3-small); full text with
        the offline one. Items already there are skipped, so this is safe on every start."""
        real = provider.kind == LlmProvider.Kind.OPENAI
        embedding_model = (
            os.environ.get("OPENAI_EMBEDDING_MODEL", "text-embedding-3-small") if real else ""
        )
        kb, _ = KnowledgeBase.objects.update_or_create(
            name=DEMO_KNOWLEDGE_BASE_NAME,
            defaults={
                "description": "Demo: a small bilingual company handbook",
                "embedding_provider": provider if real else None,
                "embedding_model": embedding_model,
                "qa_provider": provider,
                "search_mode": SearchMode.MIXED if real else SearchMode.FULL_TEXT,
            },
        )
        collection, _ = Collection.objects.get_or_create(
            knowledge_base=kb, name="Demo handbook", kind=Collection.Kind.TEXT
        )
        try:
            data_items_insert_now(
                knowledge_base_config_get(kb.pk),
                [NewItem(q, a, source="Demo handbook") for q, a in DEMO_ITEMS],
                collection_id=collection.pk,
            )
        except UpstreamError as exc:
            # The provider may be down; the next start fills the knowledge base.
            self.stderr.write(f"Demo knowledge base not filled: {exc.operator_detail}")
        BotKnowledgeBase.objects.update_or_create(
            bot=bot,
            knowledge_base=kb,
            defaults={"search_mode": kb.search_mode, "limit": 3, "min_score": 0.0},
        )
        return kb

    def _key(self, host: str, bot: Bot, kb: KnowledgeBase) -> None:
        existing = ApiKey.objects.filter(name=DEMO_KEY_NAME).first()
        if existing is not None:
            if not existing.allowed_bots.exists():
                # A demo key made before keys were bound to the demo bot.
                existing.allowed_bots.set([bot.pk])
                ApiKey.objects.filter(pk=existing.pk).update(default_bot=bot)
            if not existing.allowed_knowledge_bases.exists():
                existing.allowed_knowledge_bases.set([kb.pk])
            self.stdout.write(
                f"Demo API key: exists ({existing.prefix}…); it was shown when it was created. "
                "New one: .venv/bin/python manage.py createapikey --name demo2"
            )
            return
        _api_key, raw_key = api_key_create(
            name=DEMO_KEY_NAME, bot_ids=[bot.pk], knowledge_base_ids=[kb.pk]
        )
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
        auth = f"-H 'Authorization: Bearer {raw_key}' -H 'Content-Type: application/json'"
        self.stdout.write("Knowledge base (FastGPT's API):")
        self.stdout.write(
            f"  curl -s {host}/api/support/wallet/bill/createTrainingBill {auth} -d '{{}}'"
        )
        self.stdout.write(
            f"  curl -s {host}/api/core/dataset/data/pushData {auth} "
            f'-d \'{{"kbId": {kb.pk}, "mode": "index", "data": [{{"q": "公司几点上班？", '
            f'"a": "九点。"}}]}}\''
        )
        self.stdout.write(
            f"  curl -s {host}/api/core/dataset/searchTest {auth} "
            f'-d \'{{"kbId": {kb.pk}, "text": "忘记了密码怎么办？"}}\''
        )
