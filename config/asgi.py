"""ASGI entry point: external API endpoints go to Channels consumers, everything else
(admin, history API) to Django with its full middleware stack.

Django is set up (`get_asgi_application()`) before any consumer module is imported, because
consumers import models.
"""

import os

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application
from django.urls import re_path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_asgi_application()

from aiflowy.shutdown import lifespan  # noqa: E402
from config.routing import http_urlpatterns, websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": URLRouter([*http_urlpatterns, re_path(r"", django_application)]),
        "websocket": URLRouter(websocket_urlpatterns),
        # uvicorn: graceful shutdown (aiflowy/shutdown.py)
        "lifespan": lifespan,
    }
)
