"""`manage.py createapikey --name N [--bot ID ...] [--workflow ID ...] [--expires ISO]`.

Prints the new key once, alone on the last line, so scripts can take it with `tail -n 1`.
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apikeys.models import ApiKey
from apikeys.services import api_key_create


def _parse_expiry(value: str):
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--expires {value!r} is not an ISO date or date-time.")
        moment = timezone.datetime.combine(day, timezone.datetime.min.time())
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class Command(BaseCommand):
    help = "Create an API key and print it once (alone on the last line)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--bot",
            type=int,
            action="append",
            default=[],
            dest="bots",
            help="Allowed bot id (repeatable). None given: every bot.",
        )
        parser.add_argument(
            "--workflow",
            type=int,
            action="append",
            default=[],
            dest="workflows",
            help="Allowed workflow id (repeatable).",
        )
        parser.add_argument("--expires", help="Expiry, ISO 8601 (date or date-time).")
        parser.add_argument(
            "--rate-limit", type=int, default=0, help="Requests per minute; 0 means no limit."
        )

    def handle(self, *args, **options) -> None:
        missing_bots = set(options["bots"]) - _existing_ids("allowed_bots", options["bots"])
        if missing_bots:
            raise CommandError(f"No bot with id {', '.join(map(str, sorted(missing_bots)))}.")
        missing_workflows = set(options["workflows"]) - _existing_ids(
            "allowed_workflows", options["workflows"]
        )
        if missing_workflows:
            raise CommandError(
                f"No workflow with id {', '.join(map(str, sorted(missing_workflows)))}."
            )
        expires_at = _parse_expiry(options["expires"]) if options["expires"] else None
        api_key, raw_key = api_key_create(
            name=options["name"],
            expires_at=expires_at,
            bot_ids=options["bots"],
            workflow_ids=options["workflows"],
            rate_limit_per_minute=options["rate_limit"],
        )
        self.stderr.write(
            f"Created API key {api_key.name!r} ({api_key.prefix}…). It is shown once, below:"
        )
        self.stdout.write(raw_key)


def _existing_ids(scope_field: str, ids: list[int]) -> set[int]:
    """Which of `ids` exist in the model a key's scope field points at (bots, workflows),
    reached through the relation the key declares, so that `apikeys` does not import the apps
    whose endpoints it authenticates."""
    model = ApiKey._meta.get_field(scope_field).related_model
    return set(model.objects.filter(pk__in=ids).values_list("pk", flat=True))
