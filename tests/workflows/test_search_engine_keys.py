"""Search-engine API keys are secrets like provider keys: encrypted under
AIFLOWY_ENCRYPTION_KEYS, moved to a new key by `manage.py reencryptsecrets`, and keys stored
by the earlier SECRET_KEY-only scheme are carried over by the migration."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from aiflowy.crypto import SecretUnreadable
from tests.workflows.test_search_engine import stored_key
from workflows.models import SearchEngine
from workflows.search_engines import search_engine_config


@pytest.mark.django_db
def test_after_a_rotation_reencryptsecrets_moves_the_engine_key_to_the_new_one(settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.AIFLOWY_ENCRYPTION_KEYS = [old]
    engine = SearchEngine.objects.create(
        name="bocha", kind="json", url="https://api.example.com/v1/web-search"
    )
    engine.api_key_secret = "sk-engine-rotate-me"
    engine.save()
    under_old = stored_key(engine)
    assert under_old.startswith("fernet:") and "sk-engine-rotate-me" not in under_old

    settings.AIFLOWY_ENCRYPTION_KEYS = [new, old]
    call_command("reencryptsecrets")
    assert "workflows.SearchEngine.api_key_secret: done" in capsys.readouterr().out
    assert stored_key(engine) != under_old

    settings.AIFLOWY_ENCRYPTION_KEYS = [new]  # the old key is gone: the key still reads
    reloaded = SearchEngine.objects.get(pk=engine.pk)
    assert search_engine_config(reloaded).api_key == "sk-engine-rotate-me"
    settings.AIFLOWY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(SecretUnreadable):
        SearchEngine.objects.get(pk=engine.pk)


def _secret_key_token(plain: str) -> str:
    """A key as 0004 stored it: Fernet keyed by SECRET_KEY only."""
    digest = hashlib.sha256(
        b"aiflowy.search-engine-key:" + django_settings.SECRET_KEY.encode()
    ).digest()
    return Fernet(base64.urlsafe_b64encode(digest)).encrypt(plain.encode()).decode()


@pytest.mark.django_db(transaction=True)
def test_the_migration_carries_keys_of_the_secret_key_scheme_over():
    before = [("workflows", "0004_search_engines")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_engine = executor.loader.project_state(before).apps.get_model("workflows", "SearchEngine")
    try:
        legacy = old_engine.objects.create(
            name="legacy",
            kind="json",
            url="https://api.example.com/search",
            api_key_encrypted=_secret_key_token("sk-legacy-engine"),
        )
        unreadable = old_engine.objects.create(
            name="lost",
            kind="json",
            url="https://api.example.com/search",
            api_key_encrypted=Fernet(Fernet.generate_key()).encrypt(b"sk-other-secret").decode(),
        )
    finally:  # forward again even if the setup failed: later tests need the schema
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    engine = SearchEngine.objects.get(pk=legacy.pk)
    assert stored_key(engine).startswith("fernet:")
    assert engine.api_key_secret == "sk-legacy-engine"
    # A key the old scheme could not read any more is cleared, not passed on as garbage.
    assert SearchEngine.objects.get(pk=unreadable.pk).api_key_secret == ""
