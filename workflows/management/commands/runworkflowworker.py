"""`manage.py runworkflowworker`: run background workflow runs sent over the channel layer.

The same as `manage.py runworker <AIFLOWY_WORKFLOW_WORKER_CHANNEL>`, with the worker's ASGI
application built here, so it does not depend on the web application routing the "channel"
scope type. Start as many as you like (each needs REDIS_URL, the shared channel layer).

The Redis layer's read timeout (settings: CHANNEL_LAYERS) is longer than the layer's blocking
pops, so an idle worker waits instead of crashing.
"""

from channels.layers import get_channel_layer
from channels.routing import ChannelNameRouter
from channels.worker import Worker
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workflows.routing import channel_routes


class Command(BaseCommand):
    help = "Run background workflow runs from the channel layer (AIFLOWY_WORKFLOW_WORKER_CHANNEL)."
    leave_locale_alone = True

    def handle(self, *args, **options) -> None:
        if not settings.REDIS_URL:
            raise CommandError(
                "A workflow worker needs the Redis channel layer (set REDIS_URL): the in-memory "
                "layer cannot receive messages from another process."
            )
        channel = settings.AIFLOWY_WORKFLOW_WORKER_CHANNEL
        self.stderr.write(f"Workflow worker listening on channel {channel!r}.")
        Worker(
            application=ChannelNameRouter(channel_routes()),
            channels=[channel],
            channel_layer=get_channel_layer(),
        ).run()
