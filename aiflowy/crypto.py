"""Secrets at rest: values the platform must send on (provider API keys) are encrypted with
Fernet (cryptography: AES-128-CBC + HMAC-SHA256) under keys from the environment.

`AIFLOWY_ENCRYPTION_KEYS` is a comma-separated list of Fernet keys (make one with
`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`):
the first encrypts, all decrypt (`MultiFernet`), so a key is rotated by putting a new one in
front, running `manage.py reencryptsecrets`, then dropping the old one. Unset, a key derived
from `SECRET_KEY` is used (`manage.py check --deploy` warns): a stolen database alone then
still reveals nothing, but rotating `SECRET_KEY` needs the derived key kept in the list.

`EncryptedTextField` stores `fernet:<token>` and gives back the plain text; a value written
before encryption (no prefix) is read as is, and encrypted by `manage.py reencryptsecrets`
or the next save.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import models

PREFIX = "fernet:"


class SecretUnreadable(Exception):
    """A stored secret that none of the configured keys decrypts."""


def _derived_key() -> bytes:
    digest = hashlib.sha256(b"aiflowy-encryption-key:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def keys_configured() -> tuple[str, ...]:
    keys = tuple(k.strip() for k in settings.AIFLOWY_ENCRYPTION_KEYS if k.strip())
    return keys or (_derived_key().decode(),)


def encrypt(plain: str) -> str:
    if not plain:
        return ""
    return PREFIX + _fernet(keys_configured()).encrypt(plain.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored or not stored.startswith(PREFIX):
        return stored or ""  # written before encryption: plain text
    try:
        return _fernet(keys_configured()).decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "A stored secret cannot be decrypted with AIFLOWY_ENCRYPTION_KEYS "
            "(was the key that encrypted it removed?)."
        ) from None


def reencrypted(stored: str) -> str:
    """`stored` under the current first key (plain text gets encrypted)."""
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        return encrypt(stored)
    token = _fernet(keys_configured()).rotate(stored[len(PREFIX) :].encode())
    return PREFIX + token.decode()


class EncryptedTextField(models.TextField):
    """Plain text in Python, `fernet:<token>` in the database."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return value if value is None else decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "" or str(value).startswith(PREFIX):
            return value
        return encrypt(str(value))


@register(Tags.security)
def encryption_keys_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    try:
        _fernet(keys_configured())
    except (ValueError, TypeError):
        return [
            Error(
                "AIFLOWY_ENCRYPTION_KEYS holds a value that is not a Fernet key.",
                hint="Each key is 32 url-safe base64-encoded bytes (Fernet.generate_key()).",
                id="aiflowy.E101",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def encryption_keys_deploy_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    if settings.AIFLOWY_ENCRYPTION_KEYS:
        return []
    return [
        Warning(
            "AIFLOWY_ENCRYPTION_KEYS is not set: provider keys are encrypted with a key derived "
            "from SECRET_KEY.",
            hint="Set AIFLOWY_ENCRYPTION_KEYS to a Fernet key kept apart from SECRET_KEY.",
            id="aiflowy.W101",
        )
    ]
