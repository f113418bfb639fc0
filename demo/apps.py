from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DemoConfig(AppConfig):
    """The demo that `make run` serves: `manage.py setupdemo` seeds it (no models)."""

    name = "demo"
    verbose_name = _("Demo")
