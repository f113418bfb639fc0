"""System checks for background work (`manage.py check`, and every server start)."""

from django.conf import settings
from django.core.checks import Error, register

JOB_BACKENDS = ("procrastinate", "inprocess")


@register()
def jobs_backend_check(app_configs, **kwargs) -> list[Error]:
    backend = settings.AIFLOWY_JOBS_BACKEND
    if backend not in JOB_BACKENDS:
        return [
            Error(
                f"AIFLOWY_JOBS_BACKEND is {backend!r}; use 'procrastinate' or 'inprocess'.",
                id="workflows.E001",
            )
        ]
    if (
        backend == "procrastinate"
        and settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql"
    ):
        return [
            Error(
                "AIFLOWY_JOBS_BACKEND is 'procrastinate' but the database is not PostgreSQL: "
                "the job queue lives in PostgreSQL.",
                hint="Set DATABASE_URL to PostgreSQL, or AIFLOWY_JOBS_BACKEND=inprocess.",
                id="workflows.E002",
            )
        ]
    return []
