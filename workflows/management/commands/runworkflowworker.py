"""`manage.py runworkflowworker`: the former name of `manage.py runjobs` (kept for existing
deployments); background workflow runs are durable jobs now (aiflowy/jobs.py)."""

from aiflowy.management.commands.runjobs import Command as RunJobs


class Command(RunJobs):
    help = "Same as `manage.py runjobs`: run durable background jobs."
