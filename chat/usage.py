"""Usage per day for operators (admin usage page): requests, errors, tokens and latency of a
bot or an API key, counted from the stored exchanges (assistant messages), so every process's
answers are in it and it survives restarts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Avg, Count, Q, Sum
from django.db.models.functions import TruncDate

from chat.models import Message


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: date
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    avg_latency_ms: float | None


def usage_by_day(
    *, bot_id: int | None, api_key_id: int | None, first_day: date, last_day: date
) -> list[DayUsage]:
    """One entry per day from `first_day` to `last_day` (days without traffic as zeros)."""
    answers = Message.objects.filter(
        role=Message.Role.ASSISTANT,
        created_at__date__gte=first_day,
        created_at__date__lte=last_day,
    )
    if bot_id is not None:
        answers = answers.filter(conversation__bot_id=bot_id)
    if api_key_id is not None:
        answers = answers.filter(conversation__api_key_id=api_key_id)
    rows = {
        row["day"]: row
        for row in answers.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=Q(status=Message.Status.ERROR)),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            avg_latency_ms=Avg("total_ms"),
        )
    }
    days = []
    day = first_day
    while day <= last_day:
        row = rows.get(day, {})
        days.append(
            DayUsage(
                day=day,
                requests=row.get("requests", 0),
                errors=row.get("errors", 0),
                prompt_tokens=row.get("prompt_tokens") or 0,
                completion_tokens=row.get("completion_tokens") or 0,
                avg_latency_ms=row.get("avg_latency_ms"),
            )
        )
        day += timedelta(days=1)
    return days
