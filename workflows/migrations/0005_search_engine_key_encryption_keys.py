"""Search-engine API keys move from a Fernet keyed by SECRET_KEY alone to `aiflowy.crypto`
(MultiFernet under AIFLOWY_ENCRYPTION_KEYS, rotated by `manage.py reencryptsecrets`)."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import migrations

import aiflowy.crypto


def _secret_key_fernet() -> Fernet:
    """The scheme of 0004: a key derived from SECRET_KEY only."""
    digest = hashlib.sha256(b"aiflowy.search-engine-key:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def reencrypt_keys(apps, schema_editor):
    """Each stored token is decrypted with the old scheme and written back through the new
    field, which encrypts it. A token the old key cannot read (SECRET_KEY changed since) was
    already lost to the old code too: it is cleared, and the admin shows no key set."""
    engine_model = apps.get_model("workflows", "SearchEngine")
    table = schema_editor.quote_name(engine_model._meta.db_table)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id, api_key_secret FROM {table} WHERE api_key_secret <> ''")
        rows = cursor.fetchall()
    old = _secret_key_fernet()
    for pk, token in rows:
        if token.startswith(aiflowy.crypto.PREFIX):
            continue  # already in the new form
        try:
            plain = old.decrypt(token.encode()).decode()
        except InvalidToken:
            plain = ""
        engine_model.objects.filter(pk=pk).update(api_key_secret=plain)


def restore_old_tokens(apps, schema_editor):
    """Back to 0004's form (for a rollback to a version that reads it so)."""
    engine_model = apps.get_model("workflows", "SearchEngine")
    table = schema_editor.quote_name(engine_model._meta.db_table)
    old = _secret_key_fernet()
    with schema_editor.connection.cursor() as cursor:
        for pk, plain in engine_model.objects.values_list("pk", "api_key_secret"):
            token = old.encrypt(plain.encode()).decode() if plain else ""
            cursor.execute(f"UPDATE {table} SET api_key_secret = %s WHERE id = %s", [token, pk])


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0004_search_engines"),
    ]

    operations = [
        migrations.RenameField(
            model_name="searchengine",
            old_name="api_key_encrypted",
            new_name="api_key_secret",
        ),
        migrations.AlterField(
            model_name="searchengine",
            name="api_key_secret",
            field=aiflowy.crypto.EncryptedTextField(
                blank=True, editable=False, verbose_name="API key"
            ),
        ),
        migrations.RunPython(reencrypt_keys, restore_old_tokens),
    ]
