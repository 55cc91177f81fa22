from django.apps import AppConfig


class StockwireConfig(AppConfig):
    """Connect the process-wide receivers: database session timeouts, the end of a request's log id.

    An app only so that `ready()` connects them and Celery finds the diagnostic tasks; it has no
    models and no migrations.
    """

    name = "config"
    label = "stockwire"
    verbose_name = "Stockwire"

    def ready(self) -> None:
        from config import receivers  # noqa: F401
