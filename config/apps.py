from django.apps import AppConfig


class StockwireConfig(AppConfig):
    """Project-wide wiring that belongs to no domain app (database session settings)."""

    name = "config"
    label = "stockwire"
    verbose_name = "Stockwire"

    def ready(self) -> None:
        from config import receivers  # noqa: F401
