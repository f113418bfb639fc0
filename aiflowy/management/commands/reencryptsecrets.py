"""`manage.py reencryptsecrets`: encrypt every stored secret (`EncryptedTextField`) under the
first of `AIFLOWY_ENCRYPTION_KEYS`, after a key rotation (or to encrypt values stored before
encryption). Safe to run again; run it with the old key still in the list, then drop it."""

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from aiflowy.crypto import EncryptedTextField


class Command(BaseCommand):
    help = "Re-encrypt stored secrets with the first key of AIFLOWY_ENCRYPTION_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        for model in apps.get_models():
            fields = [f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)]
            for field in fields:
                with transaction.atomic():
                    rows = model._default_manager.select_for_update().values_list("pk", field)
                    for pk, plain in rows:
                        if plain:
                            # The field encrypts what it writes, with the first key.
                            model._default_manager.filter(pk=pk).update(**{field: plain})
                            total += 1
                self.stdout.write(f"{model._meta.label}.{field}: done")
        self.stdout.write(f"Re-encrypted {total} secret(s).")
