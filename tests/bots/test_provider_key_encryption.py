"""Provider keys are encrypted at rest (Fernet under AIFLOWY_ENCRYPTION_KEYS), still sent
upstream in plain, re-encrypted after a key rotation, and keys stored before encryption are
encrypted by the migration."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from aiflowy.crypto import SecretUnreadable
from bots.models import LlmProvider


def _stored(provider: LlmProvider) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM bots_llmprovider WHERE id = %s", [provider.pk])
        return cursor.fetchone()[0]


def test_the_key_is_encrypted_in_the_database_and_sent_upstream_in_plain(
    http, provider, bot, api_key, fake_upstream
):
    stored = _stored(provider)
    assert stored.startswith("fernet:")
    assert "sk-provider-secret" not in stored
    provider.refresh_from_db()
    assert provider.api_key == "sk-provider-secret"

    answer = http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": bot.name, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.status_code == 200, answer.text
    sent = fake_upstream.request_headers[-1]
    assert {k.lower(): v for k, v in sent.items()}["authorization"] == "Bearer sk-provider-secret"


@pytest.mark.django_db
def test_after_a_rotation_reencryptsecrets_moves_every_key_to_the_new_one(settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.AIFLOWY_ENCRYPTION_KEYS = [old]
    provider = LlmProvider.objects.create(name="rotated", api_key="sk-rotate-me")
    under_old = _stored(provider)

    settings.AIFLOWY_ENCRYPTION_KEYS = [new, old]
    call_command("reencryptsecrets")
    assert "Re-encrypted 1 secret(s)." in capsys.readouterr().out
    under_new = _stored(provider)
    assert under_new != under_old

    settings.AIFLOWY_ENCRYPTION_KEYS = [new]  # the old key is gone: the value still reads
    assert LlmProvider.objects.get(pk=provider.pk).api_key == "sk-rotate-me"
    settings.AIFLOWY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(SecretUnreadable):
        LlmProvider.objects.get(pk=provider.pk)


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_keys_stored_as_entered():
    executor = MigrationExecutor(connection)
    executor.migrate([("bots", "0001_initial")])
    old_apps = executor.loader.project_state([("bots", "0001_initial")]).apps
    old_provider = old_apps.get_model("bots", "LlmProvider")
    created = old_provider.objects.create(name="legacy", api_key="sk-entered-in-plain")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT api_key FROM bots_llmprovider WHERE id = %s", [created.pk])
            assert cursor.fetchone()[0] == "sk-entered-in-plain"
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    provider = LlmProvider.objects.get(pk=created.pk)
    assert _stored(provider).startswith("fernet:")
    assert provider.api_key == "sk-entered-in-plain"


def test_the_admin_never_shows_the_stored_token_either(db, provider):
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    page = client.get(f"/admin/bots/llmprovider/{provider.pk}/change/").content.decode()
    assert "sk-provider-secret" not in page
    assert _stored(provider)[len("fernet:") :][:20] not in page


def test_check_deploy_warns_while_no_encryption_key_is_set(settings):
    from django.core.checks import run_checks

    settings.AIFLOWY_ENCRYPTION_KEYS = []
    ids = {m.id for m in run_checks(include_deployment_checks=True)}
    assert "aiflowy.W101" in ids
    settings.AIFLOWY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    ids = {m.id for m in run_checks(include_deployment_checks=True)}
    assert "aiflowy.W101" not in ids
    settings.AIFLOWY_ENCRYPTION_KEYS = ["not-a-key"]
    assert "aiflowy.E101" in {m.id for m in run_checks()}
