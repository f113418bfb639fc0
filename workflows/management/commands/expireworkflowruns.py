"""`manage.py expireworkflowruns`: fail suspended workflow runs nobody resumed in time.

Run it from cron (say hourly) so that their saved state does not pile up; resume calls and
`runStatus` expire the run they touch anyway.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from workflows.runs import suspended_runs_expire


class Command(BaseCommand):
    help = "Fail suspended workflow runs whose time to be resumed is over."

    def handle(self, *args, **options) -> None:
        count = suspended_runs_expire()
        self.stdout.write(f"{count} suspended run(s) expired.")
