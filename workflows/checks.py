"""System checks for the workflow settings (`manage.py check`, and every server start)."""

from django.conf import settings
from django.core.checks import Error, register

BACKGROUND_MODES = ("task", "worker")


@register()
def background_mode_check(app_configs, **kwargs) -> list[Error]:
    mode = settings.AIFLOWY_WORKFLOW_BACKGROUND
    if mode not in BACKGROUND_MODES:
        return [
            Error(
                f"AIFLOWY_WORKFLOW_BACKGROUND is {mode!r}; use 'task' or 'worker'.",
                id="workflows.E001",
            )
        ]
    if mode == "worker" and not settings.REDIS_URL:
        return [
            Error(
                "AIFLOWY_WORKFLOW_BACKGROUND is 'worker' but REDIS_URL is not set: workers "
                "receive runs over the Redis channel layer.",
                hint="Set REDIS_URL, or AIFLOWY_WORKFLOW_BACKGROUND=task.",
                id="workflows.E002",
            )
        ]
    return []
