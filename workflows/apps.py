from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = _("Workflows")

    def ready(self) -> None:
        from workflows import checks  # noqa: F401  (registers the system checks)

        # Search engine nodes resolve engine names through the database.
        from workflows.search_engines import install as install_search_engines

        install_search_engines()
