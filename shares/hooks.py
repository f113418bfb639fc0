"""FastGPT's share-link auth: the operator's own server decides who may chat, and bills.

With an auth server (`host`) on the link:
- `POST {host}/shareAuth/init {token}` when the page opens (and when it loads an earlier
  chat: every read of a user's history is authorised),
- `POST {host}/shareAuth/start {token, question, shareId}` before each answer,
- `POST {host}/shareAuth/finish {token, responseData, shareId}` after each answer.

init and start answer `{"success": true[, "data": {"uid": …}]}` or `{"success": false,
"message": …}`. Both fail closed: a refusal, but also an unreachable, slow (beyond
`AIFLOWY_SHARE_AUTH_TIMEOUT_SECONDS`) or unreadable answer, stops the page or the question
with a message the page shows. finish never delays an answer: it is a durable job
(`send_finish_hook`, run by a job worker; it survives restarts), retried, and its failures
are logged and counted on the link, never shown to the user. Every call goes through the
SSRF-safe client (`aiflowy.outbound`): the auth server must be a public host unless the link
allows a private one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.utils.translation import gettext as _

from aiflowy import crypto, jobs
from aiflowy.errors import ApiError
from aiflowy.outbound import OutboundError, fetch
from shares.models import ShareLink
from shares.selectors import ShareLinkConfig

logger = logging.getLogger(__name__)

# Hook answers are small; anything bigger is not a hook answer.
MAX_HOOK_ANSWER_BYTES = 64_000
MAX_MESSAGE_CHARS = 500
MAX_UID_CHARS = 200


class AuthRefused(ApiError):
    """The auth server said no; `message` is its own."""

    status = 403
    code = "share_auth_refused"


class AuthUnavailable(ApiError):
    """The auth server could not be asked, or its answer could not be read."""

    status = 503
    code = "share_auth_unavailable"


def _hook_url(link: ShareLinkConfig, name: str) -> str:
    return f"{link.auth_host.rstrip('/')}/shareAuth/{name}"


async def _ask(link: ShareLinkConfig, name: str, body: dict[str, Any]) -> str:
    """POST one init/start hook; the uid it returned ("" when none); raises when refused or
    when no clear yes came back."""
    unavailable = AuthUnavailable(
        _("This chat's sign-in service is not answering properly; please try again later.")
    )
    try:
        response = await fetch(
            "POST",
            _hook_url(link, name),
            json=body,
            timeout_s=settings.AIFLOWY_SHARE_AUTH_TIMEOUT_SECONDS,
            max_bytes=MAX_HOOK_ANSWER_BYTES,
            allow_private=link.auth_allow_private_host,
        )
    except OutboundError as exc:
        logger.warning("shareAuth/%s of share link %s failed: %s", name, link.id, exc.message)
        raise unavailable from None
    try:
        answer = json.loads(response.body_bytes)
    except (ValueError, UnicodeDecodeError):
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("success"), bool):
        logger.warning(
            "shareAuth/%s of share link %s answered HTTP %s without a success flag",
            name,
            link.id,
            response.status,
        )
        raise unavailable
    if not answer["success"]:
        message = answer.get("message") or answer.get("msg")
        if not isinstance(message, str) or not message.strip():
            message = _("You are not allowed to use this chat.")
        raise AuthRefused(message.strip()[:MAX_MESSAGE_CHARS])
    if response.status >= 400:
        logger.warning("shareAuth/%s of share link %s: HTTP %s", name, link.id, response.status)
        raise unavailable
    data = answer.get("data")
    uid = data.get("uid") if isinstance(data, dict) else None
    if isinstance(uid, int | float) and not isinstance(uid, bool):
        uid = str(uid)
    if not isinstance(uid, str):
        return ""
    return uid.strip()[:MAX_UID_CHARS]


async def share_auth_init(link: ShareLinkConfig, *, token: str) -> str:
    """`shareAuth/init`: may this token open the page? Returns the user's uid, or ""."""
    return await _ask(link, "init", {"token": token})


async def share_auth_start(link: ShareLinkConfig, *, token: str, question: str) -> str:
    """`shareAuth/start`: may this token ask this question? Returns the user's uid, or ""."""
    return await _ask(
        link, "start", {"token": token, "question": question, "shareId": link.share_id}
    )


FINISH_HOOK_JOB = "shares.send_finish_hook"


async def send_finish_hook(link: ShareLinkConfig, *, token: str, response_data: list[dict]) -> None:
    """Queue `shareAuth/finish` as a durable job (`shares/tasks.py`): the answer never waits
    for it, and a restart or a killed worker does not lose it (a retried job may send it
    twice, which FastGPT's auth servers accept). The user's token is a credential of the
    operator's site: the job holds it encrypted (`aiflowy.crypto`). A queue that cannot be
    written is logged, never shown to the user: their answer is complete."""
    try:
        await jobs.enqueue(
            FINISH_HOOK_JOB,
            link_id=link.id,
            token_encrypted=crypto.encrypt(token),
            response_data=response_data,
        )
    except DatabaseError as exc:
        logger.warning("shareAuth/finish of share link %s not queued: %s", link.id, exc)


async def finish_hook_send(
    link_id: int, *, token_encrypted: str, response_data: list[dict]
) -> None:
    """The job's body: `shareAuth/finish` to the link's auth server as it is now, retried
    (`AIFLOWY_SHARE_FINISH_ATTEMPTS`), its failure logged and counted on the link."""
    link = await database_sync_to_async(_share_link_by_id)(link_id)
    if link is None or not link.auth_host:
        return  # the link, or its auth server, was removed meanwhile
    try:
        token = crypto.decrypt(token_encrypted)
    except crypto.SecretUnreadable as exc:
        logger.warning("shareAuth/finish of share link %s not sent: %s", link_id, exc)
        return
    await _finish_with_retries(link, token=token, response_data=response_data)


def _share_link_by_id(link_id: int) -> ShareLinkConfig | None:
    link = ShareLink.objects.filter(pk=link_id).first()
    return ShareLinkConfig.from_model(link) if link is not None else None


async def _finish_with_retries(
    link: ShareLinkConfig, *, token: str, response_data: list[dict]
) -> None:
    body = {"token": token, "responseData": response_data, "shareId": link.share_id}
    attempts = max(1, settings.AIFLOWY_SHARE_FINISH_ATTEMPTS)
    delay = settings.AIFLOWY_SHARE_FINISH_RETRY_SECONDS
    problem = ""
    for attempt in range(1, attempts + 1):
        try:
            response = await fetch(
                "POST",
                _hook_url(link, "finish"),
                json=body,
                timeout_s=settings.AIFLOWY_SHARE_FINISH_TIMEOUT_SECONDS,
                max_bytes=MAX_HOOK_ANSWER_BYTES,
                allow_private=link.auth_allow_private_host,
            )
        except OutboundError as exc:
            problem = exc.message
        else:
            if response.status < 400:
                return
            problem = f"HTTP {response.status}"
        if attempt < attempts:
            await asyncio.sleep(delay * 2 ** (attempt - 1))
    logger.warning(
        "shareAuth/finish of share link %s failed after %s attempts: %s",
        link.id,
        attempts,
        problem,
    )
    await database_sync_to_async(_count_finish_failure)(link.id)


def _count_finish_failure(link_id: int) -> None:
    ShareLink.objects.filter(pk=link_id).update(finish_hook_failures=F("finish_hook_failures") + 1)
