from django.apps import AppConfig


class AiflowyConfig(AppConfig):
    name = "aiflowy"
    verbose_name = "aiflowy"

    def ready(self) -> None:
        # Servers configure their loggers before they import the application, so by now the
        # handlers to protect exist.
        from aiflowy.logredact import install

        install()
